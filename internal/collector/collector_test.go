package collector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

const testTimeout = 20 * time.Second

// newTestPKI is the test PKI (internal/pki/pkitest) with the collector's certificate issued.
func newTestPKI(t *testing.T) *pkitest.PKI {
	t.Helper()
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "collector", pki.IssueOptions{})
	return p
}

type testCollector struct {
	c    *Collector
	addr string
	st   store.Store
	dir  string
	stop func()
}

func startCollector(t *testing.T, p *pkitest.PKI, cfg Config) *testCollector {
	t.Helper()
	return startCollectorLog(t, p, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startCollectorLog is startCollector logging to log.
func startCollectorLog(t *testing.T, p *pkitest.PKI, cfg Config, log *slog.Logger) *testCollector {
	t.Helper()
	return startCollectorWith(t, p, cfg, collectorOptions{log: log})
}

// collectorOptions vary how startCollectorWith runs a test collector.
type collectorOptions struct {
	log         *slog.Logger                  // nil: discard
	wrap        func(store.Store) store.Store // the store the collector is given, around the opened one (nil: that one)
	healthEvery time.Duration                 // run WatchHealth this often (0: not at all)
}

// startCollectorWith starts a collector as run() serves it (on LimitListener, with mTLS) on a new SQLite
// store in cfg.DataDir (default: a temporary directory), and stops everything it started when the test
// ends (or at tc.stop).
func startCollectorWith(t *testing.T, p *pkitest.PKI, cfg Config, o collectorOptions) *testCollector {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.CloseInterval == 0 {
		cfg.CloseInterval = 50 * time.Millisecond
	}
	if cfg.Limits.MaxFlowAge == 0 {
		cfg.Limits.MaxFlowAge = -1 // most tests' flows are from 2023; the skew window has tests of its own
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	raw, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := raw
	if o.wrap != nil {
		st = o.wrap(raw)
	}
	c, err := New(st, cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := auth.NewServerCredentials(p.Files(auth.RoleCollector, "collector"), log)
	if err != nil {
		t.Fatal(err)
	}
	srv, hs, err := c.NewGRPCServer(creds)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = c.Run(ctx) }()
	go func() { defer wg.Done(); _ = srv.Serve(c.LimitListener(lis)) }()
	if o.healthEvery > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); c.WatchHealth(ctx, hs, o.healthEvery) }()
	}
	tc := &testCollector{c: c, addr: lis.Addr().String(), st: st, dir: cfg.DataDir}
	stopped := false
	tc.stop = func() {
		if stopped {
			return
		}
		stopped = true
		c.Drain()
		srv.Stop()
		cancel()
		wg.Wait()
		raw.Close()
	}
	t.Cleanup(tc.stop)
	return tc
}

func dialAs(t *testing.T, addr string, files auth.Files) *grpc.ClientConn {
	t.Helper()
	creds, err := auth.NewClientCredentials(files, "127.0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sensorStream is a minimal sensor: hello, batches, window ends, acks.
type sensorStream struct {
	t      *testing.T
	stream flowfleetv1.IngestService_IngestClient
	host   string
}

func openSensor(t *testing.T, conn *grpc.ClientConn, streamID string, window uint32) (*sensorStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	st, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{
		StreamId: streamID, SoftwareVersion: "test/1", WindowSeconds: window}}}); err != nil {
		if err == io.EOF {
			// The server ended the stream first (refused it): its status comes with Recv.
			_, err = st.Recv()
		}
		return nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return nil, err
	}
	if got := resp.GetWelcome().GetWindowSeconds(); got != window {
		// A refused window: the Welcome carries the collector's, then the stream ends with the refusal.
		if _, err := st.Recv(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("welcome window %d, want %d, and the stream was not refused", got, window)
	}
	return &sensorStream{t: t, stream: st, host: resp.GetWelcome().GetHost()}, nil
}

func (s *sensorStream) send(seq uint64, flows []*flowfleetv1.Flow) {
	s.t.Helper()
	if err := s.stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{
		Seq: seq, Flows: flows}}}); err != nil {
		s.t.Fatalf("send batch %d: %v", seq, err)
	}
}

// ack waits for the next acknowledgement; dup reports a duplicate notice.
func (s *sensorStream) ack() (seq uint64, dup bool) {
	s.t.Helper()
	resp, err := s.stream.Recv()
	if err != nil {
		s.t.Fatalf("waiting for ack: %v", err)
	}
	if n := resp.GetNotice(); n != nil && n.GetCode() == flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH {
		return n.GetSeq(), true
	}
	return resp.GetAck().GetSeq(), false
}

func (s *sensorStream) endWindow(start int64, window uint32, first float64) {
	s.t.Helper()
	if err := s.stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{
		WindowStart: start, WindowSeconds: window, FirstFrameTime: first}}}); err != nil {
		s.t.Fatal(err)
	}
}

// testFlows makes n flows in the window starting at ws.
func testFlows(ws int64, n int, base int) []*flowfleetv1.Flow {
	var out []*flowfleetv1.Flow
	for i := 0; i < n; i++ {
		f := flow.Flow{SrcAddr: "10.0.0.5", SrcPort: itoa(40000 + base + i), DstAddr: "93.184.216.34", DstPort: "443",
			Protocol: flow.ProtoTCP, SrcPkts: 3, SrcBytes: int64(100 + i), DstPkts: 2, DstBytes: 1000,
			First: float64(ws) + 1 + float64(base+i)/1000, Last: float64(ws) + 2 + float64(base+i)/1000,
			Name: "example.com", NameSource: flow.SourcePassive}
		out = append(out, flowpb.ToProto(&f, ws))
	}
	return out
}

func itoa(i int) string { return flowpbItoa(i) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestIngestWritesSampleAsConvertWould(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{}))
	s, err := openSensor(t, conn, "stream-1", 60)
	if err != nil {
		t.Fatal(err)
	}
	if s.host != "web01" {
		t.Fatalf("welcome host %q, want the certificate's name web01", s.host)
	}
	ws := int64(1_700_000_040)
	b1, b2 := testFlows(ws, 3, 0), testFlows(ws, 2, 3)
	s.send(1, b1)
	s.send(2, b2)
	for i := 0; i < 2; i++ {
		if seq, dup := s.ack(); dup || seq != uint64(i+1) {
			t.Fatalf("ack %d: seq %d dup %v", i, seq, dup)
		}
	}
	s.endWindow(ws, 60, float64(ws)+0.5)
	id, fileName := closer.SampleName("web01", ws, 1)
	var got *store.Sample
	waitFor(t, "the sample and its file", func() bool {
		got, _ = tc.st.GetSample(context.Background(), id)
		return got != nil && got.State != store.StateClosed
	})
	if got.FlowCount != 5 || got.State != store.StateWritten || got.FileName != fileName {
		t.Fatalf("sample %+v", got)
	}
	file, err := os.ReadFile(filepath.Join(tc.c.SampleDir(), fileName))
	if err != nil {
		t.Fatal(err)
	}
	// The file must be what the BayseFlow writer gives for the same flows and start (compared as the
	// conformance test compares: everything but the hash).
	want := bayseflow.Encode(closer.BuildSample(append(b1, b2...), float64(ws)+0.5), fileName, "x")
	gotF, err := bayseflow.Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	wantF, _ := bayseflow.Decode(want)
	gotF.Hash, wantF.Hash = "", ""
	if !equalFiles(gotF, wantF) {
		t.Fatalf("sample file differs:\n got %s\nwant %s", file, want)
	}
	if gotF.TrafficDate != "1700000040.5" || gotF.Flows[0].RelativeStart.String() != "0.5" {
		t.Fatalf("trafficDate %s, first relativeStart %s", gotF.TrafficDate, gotF.Flows[0].RelativeStart)
	}
	content, err := tc.st.SampleContent(context.Background(), id)
	if err != nil || string(content) != string(file) {
		t.Fatalf("stored content differs from the file (%v)", err)
	}
}

func TestReplayedBatchStoredOnce(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	sensor := p.Issue(t, auth.RoleSensor, "db01", pki.IssueOptions{})
	ws := int64(1_700_000_040)
	s, err := openSensor(t, dialAs(t, tc.addr, sensor), "stream-9", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(ws, 4, 0))
	s.ack()
	s.stream.CloseSend()
	// A reconnect replays batch 1 (its ack was "lost") and sends batch 2.
	s2, err := openSensor(t, dialAs(t, tc.addr, sensor), "stream-9", 60)
	if err != nil {
		t.Fatal(err)
	}
	s2.send(1, testFlows(ws, 4, 0))
	if seq, dup := s2.ack(); !dup || seq != 1 {
		t.Fatalf("replayed batch: seq %d dup %v, want a duplicate notice for 1", seq, dup)
	}
	s2.send(2, testFlows(ws, 1, 10))
	if seq, dup := s2.ack(); dup || seq != 2 {
		t.Fatalf("batch 2: seq %d dup %v", seq, dup)
	}
	s2.endWindow(ws, 60, 0)
	id, _ := closer.SampleName("db01", ws, 1)
	waitFor(t, "the sample", func() bool { x, _ := tc.st.GetSample(context.Background(), id); return x != nil })
	x, _ := tc.st.GetSample(context.Background(), id)
	if x.FlowCount != 5 {
		t.Fatalf("sample has %d flows, want 5 (replay stored once)", x.FlowCount)
	}
}

func TestLateBatchMakesNewRevision(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "late01", pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	s.send(1, testFlows(ws, 2, 0))
	s.ack()
	s.endWindow(ws, 60, 0)
	id1, _ := closer.SampleName("late01", ws, 1)
	waitFor(t, "revision 1", func() bool { x, _ := tc.st.GetSample(context.Background(), id1); return x != nil })
	s.send(2, testFlows(ws, 1, 5))
	s.ack()
	s.endWindow(ws, 60, 0)
	id2, name2 := closer.SampleName("late01", ws, 2)
	waitFor(t, "revision 2", func() bool { x, _ := tc.st.GetSample(context.Background(), id2); return x != nil })
	x, _ := tc.st.GetSample(context.Background(), id2)
	if x.FlowCount != 3 || x.Revision != 2 || name2 != "late01_1700000040_r2.bf" {
		t.Fatalf("revision 2: %+v", x)
	}
}

func TestRoles(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second})
	sensorConn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{}))
	readerConn := dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{}))
	adminConn := dialAs(t, tc.addr, p.Issue(t, auth.RoleAdmin, "root", pki.IssueOptions{}))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	_, err := flowfleetv1.NewSampleServiceClient(sensorConn).ListSamples(ctx, &flowfleetv1.ListSamplesRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("sensor ListSamples: %v, want PermissionDenied", err)
	}
	_, err = flowfleetv1.NewFleetServiceClient(sensorConn).ListHosts(ctx, &flowfleetv1.ListHostsRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("sensor ListHosts: %v, want PermissionDenied", err)
	}
	if _, err := openSensor(t, readerConn, "x", 60); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reader Ingest: %v, want PermissionDenied", err)
	}
	if _, err := flowfleetv1.NewSampleServiceClient(readerConn).ListSamples(ctx, &flowfleetv1.ListSamplesRequest{}); err != nil {
		t.Errorf("reader ListSamples: %v", err)
	}
	if _, err := openSensor(t, adminConn, "admin-stream", 60); err != nil {
		t.Errorf("admin Ingest: %v", err)
	}
	if _, err := flowfleetv1.NewFleetServiceClient(adminConn).ListHosts(ctx, &flowfleetv1.ListHostsRequest{}); err != nil {
		t.Errorf("admin ListHosts: %v", err)
	}
	// A sensor with the wrong window length is told what to set.
	if _, err := openSensor(t, sensorConn, "w", 30); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("window mismatch: %v, want FailedPrecondition", err)
	}
}

func TestRefusedCertificates(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second})
	other := newTestPKI(t)
	foreign := other.Issue(t, auth.RoleReader, "mallory", pki.IssueOptions{})
	foreign.CAFile = p.CAFile() // trusts our collector, but is signed by another CA
	expired := p.Issue(t, auth.RoleReader, "old", pki.IssueOptions{NotBefore: time.Now().Add(-72 * time.Hour), Days: 1})
	for name, files := range map[string]auth.Files{"other CA": foreign, "expired": expired} {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		_, err := flowfleetv1.NewSampleServiceClient(dialAs(t, tc.addr, files)).ListSamples(ctx, &flowfleetv1.ListSamplesRequest{})
		cancel()
		if err == nil {
			t.Errorf("%s certificate was accepted", name)
		}
	}
}

func TestInvalidRequestsRejected(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second})
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleAdmin, "root", pki.IssueOptions{}))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := flowfleetv1.NewSampleServiceClient(conn).ListSamples(ctx, &flowfleetv1.ListSamplesRequest{PageSize: 100000})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("page_size 100000: %v, want InvalidArgument", err)
	}
	s, err := openSensor(t, conn, "v", 60)
	if err != nil {
		t.Fatal(err)
	}
	bad := testFlows(1_700_000_040, 1, 0)
	bad[0].SrcAddr = "not an address"
	s.send(1, bad)
	if _, err := s.stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid flow: %v, want InvalidArgument", err)
	}
	if _, err := flowfleetv1.NewSampleServiceClient(conn).GetSample(ctx, &flowfleetv1.GetSampleRequest{Id: "nope_1"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown sample: %v, want NotFound", err)
	}
}

func equalFiles(a, b *bayseflow.File) bool {
	if a.TrafficDate != b.TrafficDate || a.FileName != b.FileName || len(a.Flows) != len(b.Flows) {
		return false
	}
	for i := range a.Flows {
		if a.Flows[i] != b.Flows[i] {
			return false
		}
	}
	return true
}
