package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/logx"
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
	outcome store.Outcome
	err     error
}

// Batch commits (commitLoop).
const (
	// maxCommitGroup is the most batches one store transaction commits.
	maxCommitGroup = 1024
	// commitTimeout bounds one group commit; past it every batch of the group fails.
	commitTimeout = 30 * time.Second
)

// batchSaver is what the commit loop needs of the store.
type batchSaver interface {
	SaveBatches(ctx context.Context, batches []store.Batch) ([]store.Outcome, error)
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
		for len(group) < maxCommitGroup {
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
		for len(group) < maxCommitGroup {
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
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	outcomes, err := c.saver.SaveBatches(ctx, batches)
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
		case outcomes[i] == store.Duplicate:
			c.metrics.batches.WithLabelValues("duplicate").Inc()
			r.done <- commitResult{outcome: store.Duplicate}
		case outcomes[i] == store.OutOfOrder:
			c.metrics.batches.WithLabelValues("out_of_order").Inc()
			r.done <- commitResult{outcome: store.OutOfOrder}
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

type ingestServer struct {
	flowfleetv1.UnimplementedIngestServiceServer
	c  *Collector
	st streamRecorder
}

// streamRecorder is what an ingest stream writes to the store itself (its batches go through the
// commit loop): the host's contacts and the sensor's window-end marks.
type streamRecorder interface {
	ContactHost(ctx context.Context, c store.HostContact) error
	EndWindow(ctx context.Context, w store.WindowRef, firstFrameTime float64) error
}

// pending is what the acknowledgement loop waits for, in stream order.
type pending struct {
	req       *commitReq
	seq       uint64
	windowEnd *flowfleetv1.WindowEnd
}

// Ingest runs one sensor stream (see the IngestService documentation in the proto).
//
// Limits enforced here (docs/limits.md): a hello within HelloTimeout; at most MaxStreamsPerHost
// streams per host, and with OneStreamPerHost a single stream id per host; no more than IdleTimeout
// between messages; flow and window-end times within the skew window (MaxFlowAge, MaxFlowAhead). Each
// refusal is counted and logged (rate-limited).
func (s *ingestServer) Ingest(stream flowfleetv1.IngestService_IngestServer) error {
	c := s.c
	ctx := stream.Context()
	id, ok := auth.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	host := id.Name
	// One goroutine reads the stream for the handler's whole life, so that waiting for a message can
	// time out; it ends when the stream does (the handler's return cancels ctx).
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
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	helloTimer := time.NewTimer(c.cfg.Limits.HelloTimeout)
	defer helloTimer.Stop()
	var first *flowfleetv1.IngestRequest
	select {
	case first = <-msgs:
	case err := <-errc:
		return err
	case <-helloTimer.C:
		c.refused(reasonHelloTimeout, slog.LevelWarn, "ingest stream closed: no hello in time", "host", host, "timeout", c.cfg.Limits.HelloTimeout)
		return status.Errorf(codes.DeadlineExceeded, "no hello within %s", c.cfg.Limits.HelloTimeout)
	case <-c.draining:
		return status.Error(codes.Unavailable, "collector is shutting down; reconnect")
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message of an ingest stream must be a hello")
	}
	welcome := &flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Welcome{
		Welcome: &flowfleetv1.Welcome{Host: host, CollectorVersion: Version, WindowSeconds: uint32(c.cfg.Window / time.Second)}}}
	if want := uint32(c.cfg.Window / time.Second); hello.GetWindowSeconds() != want {
		// The Welcome first: it carries the collector's window, which a sensor adopts before it
		// reconnects; a sensor older than Welcome.window_seconds only sees the error.
		if err := stream.Send(welcome); err != nil {
			return err
		}
		return status.Errorf(codes.FailedPrecondition, "sensor window is %ds but this collector closes %ds windows: set the sensor's --window to %ds",
			hello.GetWindowSeconds(), want, want)
	}
	streamID := hello.GetStreamId()
	adm := c.streams.open(host, streamID, c.cfg.Limits.MaxStreamsPerHost, c.cfg.Limits.OneStreamPerHost)
	if adm.err != nil {
		c.refused(adm.why, slog.LevelWarn, "ingest stream refused", "host", host, "stream_id", streamID,
			"open_streams", adm.open, "err", adm.err)
		return adm.err
	}
	log := c.log.With("host", host, "stream_id", streamID)
	c.metrics.streams.Inc()
	defer func() {
		c.metrics.streams.Dec()
		if c.streams.close(host, streamID) == 0 {
			if err := s.st.ContactHost(context.WithoutCancel(ctx), store.HostContact{Name: host, Connected: false,
				Collector: c.cfg.Name, At: time.Now()}); err != nil {
				c.metrics.storeErrors.Inc()
				log.Warn("recording the sensor's disconnect", "err", err)
			}
		}
	}()
	if adm.other != "" {
		// Two streams of one host under different stream ids: two sensors with one certificate.
		c.metrics.hostConflicts.Inc()
		if ok, held := c.logLimit.Allow("host_conflict", time.Now()); ok {
			log.Warn("a second sensor uses this host's certificate: another stream id is open for it (cloned machine?); both are counted under this host; run the collector with --one-stream-per-host to refuse the second",
				"other_stream_id", adm.other, "open_streams", adm.open, logx.SuppressedKey, held)
		}
	}
	now := time.Now()
	if err := s.st.ContactHost(ctx, store.HostContact{Name: host, StreamID: streamID,
		SoftwareVersion: hello.GetSoftwareVersion(), WindowSeconds: hello.GetWindowSeconds(), Connected: true,
		Collector: c.cfg.Name, At: now}); err != nil {
		c.metrics.storeErrors.Inc()
		return status.Error(codes.Unavailable, "store unavailable, try again")
	}
	log.Info("sensor connected", "version", hello.GetSoftwareVersion())
	defer log.Info("sensor disconnected")
	if err := stream.Send(welcome); err != nil {
		return err
	}

	queue := make(chan pending, maxInFlight)
	ackDone := make(chan error, 1)
	ackFailed := make(chan struct{})
	go func() { ackDone <- s.ackLoop(stream, host, queue, ackFailed) }()
	recvErr := s.receive(ctx, log, host, streamID, msgs, errc, queue, ackFailed)
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

// receive handles the stream's messages until it ends, the collector drains, an ack fails, a message
// is refused or the stream stays idle for IdleTimeout.
func (s *ingestServer) receive(ctx context.Context, log *slog.Logger, host, streamID string, msgs <-chan *flowfleetv1.IngestRequest,
	errc <-chan error, queue chan<- pending, ackFailed <-chan struct{}) error {
	c := s.c
	var failed atomic.Bool // set once a batch of this stream fails to commit
	idle := time.NewTimer(c.cfg.Limits.IdleTimeout)
	defer idle.Stop()
	for {
		// The idle clock runs only while waiting for the sensor, not while the store pushes back.
		if !idle.Stop() {
			select {
			case <-idle.C:
			default:
			}
		}
		idle.Reset(c.cfg.Limits.IdleTimeout)
		var m *flowfleetv1.IngestRequest
		select {
		case m = <-msgs:
		case err := <-errc:
			return err
		case <-c.draining:
			return status.Error(codes.Unavailable, "collector is shutting down; reconnect")
		case <-ackFailed:
			return nil
		case <-idle.C:
			c.refused(reasonIdle, slog.LevelInfo, "idle ingest stream closed", "host", host, "stream_id", streamID,
				"idle_timeout", c.cfg.Limits.IdleTimeout)
			return status.Errorf(codes.Unavailable, "no message for %s: idle stream closed (--stream-idle-timeout); reconnect when there is data", c.cfg.Limits.IdleTimeout)
		}
		switch x := m.GetMessage().(type) {
		case *flowfleetv1.IngestRequest_Batch:
			now := time.Now()
			if err := c.checkBatchTimes(x.Batch, now); err != nil {
				c.refused(reasonTimeRange, slog.LevelWarn, "batch refused: a time outside the skew window", "host", host,
					"stream_id", streamID, "seq", x.Batch.GetSeq(), "err", err)
				return err
			}
			req, err := c.newCommit(host, streamID, x.Batch)
			if err != nil {
				// Never stored, never acknowledged: the sensor keeps the batch.
				c.metrics.batches.WithLabelValues("failed").Inc()
				c.refused(reasonUnencodable, slog.LevelError, "batch refused: it could not be encoded for the store", "host", host,
					"stream_id", streamID, "seq", x.Batch.GetSeq(), "flows", len(x.Batch.GetFlows()), "err", err)
				return status.Errorf(codes.Internal, "batch seq %d could not be encoded: not stored, not acknowledged", x.Batch.GetSeq())
			}
			req.failed = &failed
			select {
			case c.commits <- req:
			case <-c.stopCommits:
				return status.Error(codes.Unavailable, "collector is shutting down; reconnect")
			}
			queue <- pending{req: req, seq: x.Batch.GetSeq()}
		case *flowfleetv1.IngestRequest_WindowEnd:
			if secs := x.WindowEnd.GetWindowSeconds(); time.Duration(secs)*time.Second != c.cfg.Window {
				c.refused(reasonWindowLength, slog.LevelWarn, "window end refused: not the stream's window length", "host", host,
					"stream_id", streamID, "window_seconds", secs)
				return status.Errorf(codes.InvalidArgument, "window_end.window_seconds: %d is not the stream's window (%s)", secs, c.cfg.Window)
			}
			if err := c.checkWindowEndTimes(x.WindowEnd, time.Now()); err != nil {
				c.refused(reasonTimeRange, slog.LevelWarn, "window end refused: a time outside the skew window", "host", host,
					"stream_id", streamID, "err", err)
				return err
			}
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
			err := s.st.EndWindow(stream.Context(), store.WindowRef{Host: host, WindowStart: we.GetWindowStart(),
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
		if r.outcome == store.OutOfOrder {
			// Not stored, so never acknowledged: the sensor keeps the batch.
			c.refused(reasonOutOfOrder, slog.LevelWarn, "batch refused: seq out of order", "host", host, "seq", p.seq)
			fail(status.Errorf(codes.FailedPrecondition,
				"batch seq %d is at or below this stream id's highest stored seq but was never stored (or is more than %d below it): refused and not acknowledged; a stream id's seqs must increase (start a new stream id to restart at 1)",
				p.seq, store.RecentSeqs))
			continue
		}
		resp := &flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Ack{Ack: &flowfleetv1.Ack{Seq: p.seq}}}
		if r.outcome == store.Duplicate {
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

// newCommit splits a batch's flows by window and encodes each part. An encoding error returns no
// request: a batch the collector cannot encode is never stored, so it must never be acknowledged.
func (c *Collector) newCommit(host, streamID string, b *flowfleetv1.FlowBatch) (*commitReq, error) {
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
		// Packets and flows apart (Host.drops_reported, Host.flows_dropped); the sum saturates.
		batch.Drops = satAdd(d.GetKernelPackets(), d.GetSensorPackets())
		batch.FlowDrops = min(d.GetSensorFlows(), math.MaxInt64)
	}
	encode := c.encode
	if encode == nil {
		encode = flowpb.EncodeEnds
	}
	for _, ws := range order {
		enc, ends, err := encode(byWindow[ws]) // ends: the store cuts a part at its window's bound
		if err != nil {
			return nil, fmt.Errorf("encode the flows of window %d: %w", ws, err)
		}
		batch.Parts = append(batch.Parts, store.BatchPart{WindowStart: ws, WindowSeconds: uint32(w),
			FlowCount: len(byWindow[ws]), Flows: enc, FlowEnds: ends})
	}
	return &commitReq{batch: batch, flows: len(b.GetFlows()), received: now, done: make(chan commitResult, 1)}, nil
}

// satAdd adds two counters, saturating at 2^63−1 (what the store keeps).
func satAdd(a, b uint64) uint64 {
	const top = math.MaxInt64
	a, b = min(a, top), min(b, top)
	if a > top-b {
		return top
	}
	return a + b
}
