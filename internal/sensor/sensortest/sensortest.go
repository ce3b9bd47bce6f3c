// Package sensortest holds test fixtures for the sensor's packages and for end-to-end tests that run a
// sensor: certificates made at test time with internal/pki, and a fake collector (a real
// IngestService over mutual TLS on 127.0.0.1) that records what it receives.
package sensortest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
)

// SensorName is the name in the sensor certificate NewPKI issues.
const SensorName = "test-sensor"

// PKI is a CA and two certificates in a temporary directory: a collector's (for localhost and
// 127.0.0.1) and a sensor's.
type PKI struct {
	Dir       string
	CA        *pki.CA
	Collector auth.Files
	Sensor    auth.Files
}

// NewPKI creates the CA and certificates in t.TempDir() (internal/pki/pkitest).
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	tp := pkitest.New(t)
	return &PKI{Dir: tp.Dir, CA: tp.CA, Collector: tp.Issue(t, auth.RoleCollector, "collector1", pki.IssueOptions{}),
		Sensor: tp.Issue(t, auth.RoleSensor, SensorName, pki.IssueOptions{})}
}

// QuietLogger discards everything.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Collector is a fake IngestService: it welcomes every Hello, stores each batch once (a replay gets a
// DUPLICATE_BATCH notice and an Ack again, as the real collector does) and records window ends.
// Restart serves again on the same address with the same records.
type Collector struct {
	flowfleetv1.UnimplementedIngestServiceServer
	t     testing.TB
	files auth.Files

	mu         sync.Mutex
	addr       string
	srv        *grpc.Server
	done       chan struct{}
	received   map[uint64]int // seq → times received
	batches    map[uint64]*flowfleetv1.FlowBatch
	windowEnds []*flowfleetv1.WindowEnd
	hellos     []*flowfleetv1.Hello
	order      []uint64 // seqs in the order first stored
	events     []string // "batch <seq>" and "window_end <start>", in arrival order
	holdAcks   bool
	window     uint32 // Welcome.window_seconds (0: as a collector older than the field)
	// AfterBatch, when set, is called for each batch received before it is acked; returning false
	// withholds the ack (the batch is still recorded).
	AfterBatch func(b *flowfleetv1.FlowBatch) bool
}

// StartCollector serves a fake collector on addr ("127.0.0.1:0" for any port) and stops it at cleanup.
func StartCollector(t testing.TB, p *PKI, addr string) *Collector {
	t.Helper()
	c := &Collector{t: t, files: p.Collector, received: map[uint64]int{}, batches: map[uint64]*flowfleetv1.FlowBatch{}}
	c.serve(addr)
	t.Cleanup(c.Stop)
	return c
}

func (c *Collector) serve(addr string) {
	c.t.Helper()
	creds, err := auth.NewServerCredentials(c.files, QuietLogger())
	if err != nil {
		c.t.Fatal(err)
	}
	var lis net.Listener
	for i := 0; ; i++ { // a restarted server may have to wait for its port
		lis, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds))
	flowfleetv1.RegisterIngestServiceServer(srv, c)
	done := make(chan struct{})
	c.mu.Lock()
	c.addr, c.srv, c.done = lis.Addr().String(), srv, done
	c.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
}

// Addr is the address the collector serves on.
func (c *Collector) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Stop stops serving at once (server.Stop: open streams break).
func (c *Collector) Stop() {
	c.mu.Lock()
	srv, done := c.srv, c.done
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-done
	}
}

// Restart serves again on the same address, keeping the records.
func (c *Collector) Restart() {
	c.Stop()
	c.serve(c.Addr())
}

// SetWindow makes the Welcome carry secs as the collector's window (0, the default, leaves it out, as
// a collector older than Welcome.window_seconds does). The fake never refuses a Hello's window.
func (c *Collector) SetWindow(secs uint32) {
	c.mu.Lock()
	c.window = secs
	c.mu.Unlock()
}

// HoldAcks stops (true) or resumes (false) acknowledging batches.
func (c *Collector) HoldAcks(hold bool) {
	c.mu.Lock()
	c.holdAcks = hold
	c.mu.Unlock()
}

// Ingest implements the protocol's collector side.
func (c *Collector) Ingest(stream grpc.BidiStreamingServer[flowfleetv1.IngestRequest, flowfleetv1.IngestResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return errors.New("first message is not a hello")
	}
	c.mu.Lock()
	c.hellos = append(c.hellos, hello)
	window := c.window
	c.mu.Unlock()
	if err := stream.Send(&flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Welcome{
		Welcome: &flowfleetv1.Welcome{Host: SensorName, CollectorVersion: "fake", WindowSeconds: window}}}); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		switch m := req.GetMessage().(type) {
		case *flowfleetv1.IngestRequest_Hello:
			return errors.New("second hello")
		case *flowfleetv1.IngestRequest_WindowEnd:
			c.mu.Lock()
			c.windowEnds = append(c.windowEnds, m.WindowEnd)
			c.events = append(c.events, fmt.Sprintf("window_end %d", m.WindowEnd.GetWindowStart()))
			c.mu.Unlock()
		case *flowfleetv1.IngestRequest_Batch:
			b := m.Batch
			c.mu.Lock()
			c.received[b.GetSeq()]++
			c.events = append(c.events, fmt.Sprintf("batch %d", b.GetSeq()))
			_, dup := c.batches[b.GetSeq()]
			if !dup {
				c.batches[b.GetSeq()] = b
				c.order = append(c.order, b.GetSeq())
			}
			hold, after := c.holdAcks, c.AfterBatch
			c.mu.Unlock()
			if after != nil && !after(b) || hold {
				continue
			}
			if dup {
				if err := stream.Send(&flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Notice{
					Notice: &flowfleetv1.Notice{Code: flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH, Seq: b.GetSeq()}}}); err != nil {
					return err
				}
			}
			if err := stream.Send(&flowfleetv1.IngestResponse{Message: &flowfleetv1.IngestResponse_Ack{Ack: &flowfleetv1.Ack{Seq: b.GetSeq()}}}); err != nil {
				return err
			}
		}
	}
}

// Seqs returns the seqs stored, ascending.
func (c *Collector) Seqs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, 0, len(c.batches))
	for s := range c.batches {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Order returns the seqs in the order they were first stored.
func (c *Collector) Order() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Received returns how many times each seq arrived.
func (c *Collector) Received() map[uint64]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint64]int, len(c.received))
	for k, v := range c.received {
		out[k] = v
	}
	return out
}

// Batches returns the stored batches, by seq.
func (c *Collector) Batches() []*flowfleetv1.FlowBatch {
	seqs := c.Seqs()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*flowfleetv1.FlowBatch, len(seqs))
	for i, s := range seqs {
		out[i] = c.batches[s]
	}
	return out
}

// Flows returns every stored flow, in seq order.
func (c *Collector) Flows() []*flowfleetv1.Flow {
	var out []*flowfleetv1.Flow
	for _, b := range c.Batches() {
		out = append(out, b.GetFlows()...)
	}
	return out
}

// WindowEnds returns the window ends received, in order.
func (c *Collector) WindowEnds() []*flowfleetv1.WindowEnd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.windowEnds)
}

// Events returns "batch <seq>" and "window_end <start>" entries in arrival order, replays included.
func (c *Collector) Events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Hellos returns the hellos received, in order.
func (c *Collector) Hellos() []*flowfleetv1.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.hellos)
}

// Eventually polls cond every 10 ms until it holds or timeout passes, then fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Value returns the current value of a counter or gauge (a single metric), or the sample count of a
// histogram.
func Value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var total float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		switch {
		case pb.Counter != nil:
			total += pb.Counter.GetValue()
		case pb.Gauge != nil:
			total += pb.Gauge.GetValue()
		case pb.Histogram != nil:
			total += float64(pb.Histogram.GetSampleCount())
		}
	}
	return total
}
