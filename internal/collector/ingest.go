package collector

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
)

// maxInFlight bounds the batches of one stream waiting for their acknowledgement; past it the stream
// stops reading, which pushes back on the sensor.
const maxInFlight = 256

// commitReq is one batch waiting for the committer.
type commitReq struct {
	batch    store.Batch
	flows    int
	received time.Time
	done     chan commitResult
	// failed is shared by the batches of one ingest stream: once a batch of the stream fails to commit,
	// later ones must not be stored either, or the stream's dedup mark would pass the failed batch and
	// its replay would be acknowledged as a duplicate without being stored.
	failed *atomic.Bool
}

// errStreamFailed answers the batches queued behind a batch of the same stream that failed to commit.
var errStreamFailed = errors.New("an earlier batch of the stream failed to commit")

type commitResult struct {
	dup bool
	err error
}

// commitLoop stores batches in group transactions: whatever is queued when a transaction starts shares
// it, so that a thousand streams cost a few transactions per second rather than a thousand.
func (c *Collector) commitLoop() {
	for {
		var group []*commitReq
		select {
		case r := <-c.commits:
			group = append(group, r)
		case <-c.stopCommits:
			c.drainCommits()
			return
		}
		deadline := time.NewTimer(c.cfg.CommitDelay)
	collect:
		for len(group) < 1024 {
			select {
			case r := <-c.commits:
				group = append(group, r)
			case <-deadline.C:
				break collect
			}
		}
		deadline.Stop()
		c.commit(group)
	}
}

// drainCommits commits what is still queued when the collector stops.
func (c *Collector) drainCommits() {
	for {
		var group []*commitReq
		for len(group) < 1024 {
			select {
			case r := <-c.commits:
				group = append(group, r)
				continue
			default:
			}
			break
		}
		if len(group) == 0 {
			return
		}
		c.commit(group)
	}
}

func (c *Collector) commit(group []*commitReq) {
	live := group[:0:0]
	for _, r := range group {
		if r.failed != nil && r.failed.Load() {
			c.metrics.batches.WithLabelValues("failed").Inc()
			r.done <- commitResult{err: errStreamFailed}
			continue
		}
		live = append(live, r)
	}
	group = live
	if len(group) == 0 {
		return
	}
	batches := make([]store.Batch, len(group))
	for i, r := range group {
		batches[i] = r.batch
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	dup, err := c.store.SaveBatches(ctx, batches)
	cancel()
	c.metrics.commitSize.Observe(float64(len(group)))
	if err != nil {
		c.metrics.storeErrors.Inc()
		c.log.Error("storing batches", "batches", len(group), "err", err)
		for _, r := range group {
			if r.failed != nil {
				r.failed.Store(true)
			}
		}
	}
	for i, r := range group {
		switch {
		case err != nil:
			c.metrics.batches.WithLabelValues("failed").Inc()
			r.done <- commitResult{err: err}
		case dup[i]:
			c.metrics.batches.WithLabelValues("duplicate").Inc()
			r.done <- commitResult{dup: true}
		default:
			c.metrics.batches.WithLabelValues("stored").Inc()
			c.metrics.flows.Add(float64(r.flows))
			c.noteBounded(&batches[i])
			r.done <- commitResult{}
		}
	}
}

// noteBounded counts the flows of a stored batch that the per-window bound dropped (the batch is still
// acknowledged: the bound is the collector's choice, and a sensor sending it again would not help), and
// logs each window once, when it first reaches its bound.
func (c *Collector) noteBounded(b *store.Batch) {
	for _, p := range b.Parts {
		if p.Dropped == 0 {
			continue
		}
		c.metrics.windowDrops.Add(float64(p.Dropped))
		if p.Overflowed {
			c.metrics.windowsBounded.Inc()
			c.log.Warn("window reached its bound: later flows of this window are dropped and counted in the sample's flows_dropped",
				"host", b.Host, "window_start", p.WindowStart, "max_flows", c.cfg.MaxWindowFlows,
				"max_bytes", c.cfg.MaxWindowBytes, "dropped", p.Dropped)
		}
	}
}

// streamSet counts each host's open streams, for FleetService's "connected".
type streamSet struct {
	mu     sync.Mutex
	byHost map[string]int
}

func newStreamSet() *streamSet { return &streamSet{byHost: make(map[string]int)} }

func (s *streamSet) add(host string, d int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byHost[host] += d
	n := s.byHost[host]
	if n <= 0 {
		delete(s.byHost, host)
	}
	return n
}

func (s *streamSet) connected(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byHost[host] > 0
}

type ingestServer struct {
	flowfleetv1.UnimplementedIngestServiceServer
	c *Collector
}

// pending is what the acknowledgement loop waits for, in stream order.
type pending struct {
	req       *commitReq
	seq       uint64
	windowEnd *flowfleetv1.WindowEnd
}

// Ingest runs one sensor stream (see the IngestService documentation in the proto).
func (s *ingestServer) Ingest(stream flowfleetv1.IngestService_IngestServer) error {
	c := s.c
	ctx := stream.Context()
	id, ok := auth.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	host := id.Name
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message of an ingest stream must be a hello")
	}
	if want := uint32(c.cfg.Window / time.Second); hello.GetWindowSeconds() != want {
		return status.Errorf(codes.FailedPrecondition, "sensor window is %ds but this collector closes %ds windows: set the sensor's --window to %ds",
			hello.GetWindowSeconds(), want, want)
	}
	now := time.Now()
	if err := c.store.ContactHost(ctx, store.HostContact{Name: host, StreamID: hello.GetStreamId(),
		SoftwareVersion: hello.GetSoftwareVersion(), WindowSeconds: hello.GetWindowSeconds(), Connected: true,
		Collector: c.cfg.Name, At: now}); err != nil {
		c.metrics.storeErrors.Inc()
		return status.Error(codes.Unavailable, "store unavailable, try again")
	}
	c.streams.add(host, 1)
	c.metrics.streams.Inc()
	log := c.log.With("host", host, "stream_id", hello.GetStreamId())
	log.Info("sensor connected", "version", hello.GetSoftwareVersion())
	defer func() {
		c.metrics.streams.Dec()
		if c.streams.add(host, -1) == 0 {
			_ = c.store.ContactHost(context.WithoutCancel(ctx), store.HostContact{Name: host, Connected: false,
				Collector: c.cfg.Name, At: time.Now()})
		}
		log.Info("sensor disconnected")
	}()
	if err := stream.Send(&flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Welcome{
		Welcome: &flowfleetv1.Welcome{Host: host, CollectorVersion: Version}}}); err != nil {
		return err
	}

	queue := make(chan pending, maxInFlight)
	ackDone := make(chan error, 1)
	ackFailed := make(chan struct{})
	go func() { ackDone <- s.ackLoop(stream, host, queue, ackFailed) }()
	recvErr := s.receive(stream, host, hello.GetStreamId(), queue, ackFailed)
	close(queue)
	ackErr := <-ackDone
	switch {
	case ackErr != nil:
		log.Warn("ingest stream ended", "err", ackErr)
		return ackErr
	case recvErr != nil && !errors.Is(recvErr, io.EOF):
		return recvErr
	}
	return nil
}

// receive reads the stream until it ends, the collector drains, or an ack fails.
func (s *ingestServer) receive(stream flowfleetv1.IngestService_IngestServer, host, streamID string, queue chan<- pending, ackFailed <-chan struct{}) error {
	c := s.c
	var failed atomic.Bool // set once a batch of this stream fails to commit
	msgs := make(chan *flowfleetv1.IngestRequest)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-stream.Context().Done():
				errc <- stream.Context().Err()
				return
			}
		}
	}()
	for {
		var m *flowfleetv1.IngestRequest
		select {
		case m = <-msgs:
		case err := <-errc:
			return err
		case <-c.draining:
			return status.Error(codes.Unavailable, "collector is shutting down; reconnect")
		case <-ackFailed:
			return nil
		}
		switch x := m.GetMessage().(type) {
		case *flowfleetv1.IngestRequest_Batch:
			req := c.newCommit(host, streamID, x.Batch)
			req.failed = &failed
			select {
			case c.commits <- req:
			case <-c.stopCommits:
				return status.Error(codes.Unavailable, "collector is shutting down; reconnect")
			}
			queue <- pending{req: req, seq: x.Batch.GetSeq()}
		case *flowfleetv1.IngestRequest_WindowEnd:
			queue <- pending{windowEnd: x.WindowEnd}
		case *flowfleetv1.IngestRequest_Hello:
			return status.Error(codes.InvalidArgument, "hello may only be the first message")
		}
	}
}

// ackLoop acknowledges batches as they become durable, and marks windows ended once every batch sent
// before the mark is stored.
func (s *ingestServer) ackLoop(stream flowfleetv1.IngestService_IngestServer, host string, queue <-chan pending, failedc chan<- struct{}) error {
	c := s.c
	var failed error
	defer func() {
		if failed == nil {
			close(failedc)
		}
	}()
	fail := func(err error) {
		if failed == nil {
			failed = err
			close(failedc)
		}
	}
	for p := range queue {
		if failed != nil {
			continue // drain
		}
		if p.windowEnd != nil {
			we := p.windowEnd
			err := c.store.EndWindow(stream.Context(), store.WindowRef{Host: host, WindowStart: we.GetWindowStart(),
				WindowSeconds: we.GetWindowSeconds()}, we.GetFirstFrameTime())
			if err != nil {
				c.metrics.storeErrors.Inc()
				c.log.Warn("marking window end", "host", host, "window_start", we.GetWindowStart(), "err", err)
			}
			continue
		}
		r := <-p.req.done
		if r.err != nil {
			fail(status.Error(codes.Unavailable, "batch could not be stored; resend it"))
			continue
		}
		resp := &flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Ack{Ack: &flowfleetv1.Ack{Seq: p.seq}}}
		if r.dup {
			resp = &flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Notice{Notice: &flowfleetv1.Notice{
				Code: flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH, Seq: p.seq,
				Message: "batch already stored; acknowledged again"}}}
		}
		if err := stream.Send(resp); err != nil {
			fail(err)
			continue
		}
		c.metrics.acks.Inc()
		c.metrics.ackLatency.Observe(time.Since(p.req.received).Seconds())
	}
	return failed
}

// newCommit splits a batch's flows by window and encodes each part.
func (c *Collector) newCommit(host, streamID string, b *flowfleetv1.FlowBatch) *commitReq {
	w := int64(c.cfg.Window / time.Second)
	now := time.Now()
	byWindow := map[int64][]*flowfleetv1.Flow{}
	var order []int64
	for _, f := range b.GetFlows() {
		ws := f.GetWindowStart()
		if ws%w != 0 || f.GetFirstSeen() < float64(ws) || f.GetFirstSeen() >= float64(ws+w) {
			ws = int64(f.GetFirstSeen()) / w * w // the window of the flow's first packet
		}
		if _, ok := byWindow[ws]; !ok {
			order = append(order, ws)
		}
		byWindow[ws] = append(byWindow[ws], f)
	}
	batch := store.Batch{Host: host, StreamID: streamID, Seq: b.GetSeq(), Received: now, Limits: c.cfg.windowLimits()}
	if d := b.GetDrops(); d != nil {
		batch.Drops = d.GetKernelPackets() + d.GetSensorPackets()
	}
	var encErr error
	for _, ws := range order {
		enc, ends, err := flowpb.EncodeEnds(byWindow[ws]) // ends: the store cuts a part at its window's bound
		if err != nil {
			encErr = err
			break
		}
		batch.Parts = append(batch.Parts, store.BatchPart{WindowStart: ws, WindowSeconds: uint32(w),
			FlowCount: len(byWindow[ws]), Flows: enc, FlowEnds: ends})
	}
	req := &commitReq{batch: batch, flows: len(b.GetFlows()), received: now, done: make(chan commitResult, 1)}
	if encErr != nil {
		req.batch.Parts = nil
	}
	return req
}
