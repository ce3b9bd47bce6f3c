package collector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/sensor/ship"
	"github.com/flowfleet/flowfleet/internal/store"
)

// ctxT is a context bounded by testTimeout.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recvErr waits for the stream's end and returns its status; an ack or notice first fails the test.
func (s *sensorStream) recvErr() error {
	s.t.Helper()
	resp, err := s.stream.Recv()
	if err == nil {
		s.t.Fatalf("got %v, want the stream to end with an error", resp)
	}
	return err
}

func (s *sensorStream) sendBatch(b *flowfleetv1.FlowBatch) {
	s.t.Helper()
	if err := s.stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: b}}); err != nil && !errors.Is(err, io.EOF) {
		s.t.Fatalf("send batch %d: %v", b.GetSeq(), err)
	}
}

func wantCode(t *testing.T, what string, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), text) {
		t.Fatalf("%s: %v, want %s mentioning %q", what, err, code, text)
	}
}

func hostOf(t *testing.T, tc *testCollector, name string) store.Host {
	t.Helper()
	hosts, _, err := tc.st.ListHosts(context.Background(), store.HostFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if h.Name == name {
			return h
		}
	}
	return store.Host{}
}

// Every sample id the collector issues is accepted by every RPC that takes an id, up to a host name
// of 253 characters with dots (issue 14, item 2).
func TestLongDottedHostSampleIDs(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	reader := flowfleetv1.NewSampleServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	admin := flowfleetv1.NewSampleServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleAdmin, "root", pki.IssueOptions{})))
	ctx := ctxT(t)
	ws := int64(1_700_000_040)

	// The longest names: every RPC takes their ids (there is no such sample: NOT_FOUND, not INVALID_ARGUMENT).
	longest := strings.Repeat("a.b-c_", 42) + "z" // 253 characters of [A-Za-z0-9._-]
	if len(longest) != 253 || auth.ValidateName(longest) != nil {
		t.Fatalf("test host name of %d characters: %v", len(longest), auth.ValidateName(longest))
	}
	for _, rev := range []int{1, 2, 4294967295} {
		id, _ := closer.SampleName(longest, math.MaxInt64/60*60, rev)
		calls := map[string]func() error{
			"GetSample": func() error { _, err := reader.GetSample(ctx, &flowfleetv1.GetSampleRequest{Id: id}); return err },
			"GetSampleContent": func() error {
				st, err := reader.GetSampleContent(ctx, &flowfleetv1.GetSampleContentRequest{Id: id})
				if err != nil {
					return err
				}
				_, err = st.Recv()
				return err
			},
			"ListSampleFlows": func() error {
				_, err := reader.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id})
				return err
			},
			"RelaySample": func() error { _, err := admin.RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: id}); return err },
		}
		for name, call := range calls {
			if err := call(); status.Code(err) == codes.InvalidArgument || err == nil {
				t.Errorf("%s of the %d-character id %s…: %v, want the id accepted", name, len(id), id[:20], err)
			}
		}
	}

	// A real sample of a long dotted host, and its second revision, read back through every RPC.
	host := strings.Repeat("ab.", 66) + "cd" // 200 characters: its file name fits a file system's 255
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, host, pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(ws, 3, 0))
	if seq, dup := s.ack(); seq != 1 || dup {
		t.Fatalf("ack %d %v", seq, dup)
	}
	s.endWindow(ws, 60, 0)
	id1, _ := closer.SampleName(host, ws, 1)
	waitFor(t, "the first revision", func() bool { x, _ := tc.st.GetSample(context.Background(), id1); return x != nil })
	s.send(2, testFlows(ws, 1, 10))
	if seq, dup := s.ack(); seq != 2 || dup {
		t.Fatalf("ack %d %v", seq, dup)
	}
	s.endWindow(ws, 60, 0)
	id2, _ := closer.SampleName(host, ws, 2)
	waitFor(t, "the second revision", func() bool {
		x, _ := tc.st.GetSample(context.Background(), id2)
		return x != nil && x.State == store.StateWritten
	})
	for id, flows := range map[string]int{id1: 3, id2: 4} {
		got, err := reader.GetSample(ctx, &flowfleetv1.GetSampleRequest{Id: id})
		if err != nil || got.GetSample().GetHost() != host {
			t.Fatalf("GetSample %s: %v, %v", id, got, err)
		}
		cs, err := reader.GetSampleContent(ctx, &flowfleetv1.GetSampleContentRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if chunk, err := cs.Recv(); err != nil || len(chunk.GetChunk()) == 0 {
			t.Fatalf("GetSampleContent %s: %v", id, err)
		}
		fl, err := reader.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id})
		if err != nil || len(fl.GetFlows()) != flows {
			t.Fatalf("ListSampleFlows %s: %d flows, %v; want %d", id, len(fl.GetFlows()), err, flows)
		}
	}
}

// Packet and flow drops reach ListHosts apart, and counters near 2^64 and 2^63 saturate without
// breaking ListHosts for anyone (issue 14, items 3 and 4).
func TestDropsThroughIngest(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	ws := int64(1_700_000_040)
	send := func(host string, batches ...*flowfleetv1.FlowBatch) {
		t.Helper()
		s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, host, pki.IssueOptions{})), "s", 60)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			s.sendBatch(b)
			if seq, dup := s.ack(); seq != b.GetSeq() || dup {
				t.Fatalf("%s: ack %d %v, want %d stored", host, seq, dup, b.GetSeq())
			}
		}
	}
	send("lossy",
		&flowfleetv1.FlowBatch{Seq: 1, Flows: testFlows(ws, 2, 0), Drops: &flowfleetv1.DropCounters{KernelPackets: 2, SensorPackets: 3, SensorFlows: 21000}},
		&flowfleetv1.FlowBatch{Seq: 2, Drops: &flowfleetv1.DropCounters{SensorFlows: 410}})
	send("hostile",
		&flowfleetv1.FlowBatch{Seq: 1, Drops: &flowfleetv1.DropCounters{KernelPackets: math.MaxUint64, SensorPackets: math.MaxUint64, SensorFlows: math.MaxUint64}},
		&flowfleetv1.FlowBatch{Seq: 2, Drops: &flowfleetv1.DropCounters{KernelPackets: 1 << 63, SensorFlows: 1<<63 - 1}},
		&flowfleetv1.FlowBatch{Seq: 3, Drops: &flowfleetv1.DropCounters{KernelPackets: 1 << 63, SensorFlows: 1 << 63}})
	reader := flowfleetv1.NewFleetServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	resp, err := reader.ListHosts(ctxT(t), &flowfleetv1.ListHostsRequest{})
	if err != nil || len(resp.GetHosts()) != 2 {
		t.Fatalf("ListHosts: %v, %v", resp, err)
	}
	for _, h := range resp.GetHosts() {
		var pkts, flows uint64 = 5, 21410
		if h.GetName() == "hostile" {
			pkts, flows = math.MaxInt64, math.MaxInt64
		}
		if h.GetDropsReported() != pkts || h.GetFlowsDropped() != flows {
			t.Errorf("%s: drops_reported %d, flows_dropped %d; want %d packets and %d flows", h.GetName(),
				h.GetDropsReported(), h.GetFlowsDropped(), pkts, flows)
		}
	}
}

// A seq of 2^63 or more is refused (INVALID_ARGUMENT) and never acked; a replay after a reconnect is
// acked as a duplicate and not stored twice; a backwards seq that was never stored is refused
// (FAILED_PRECONDITION), in the same session and in a later one, and not stored (issue 14, item 5).
func TestSeqRules(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{}))
	ws := int64(1_700_000_040)
	open := func() *sensorStream {
		t.Helper()
		s, err := openSensor(t, conn, "stream-1", 60)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, seq := range []uint64{1 << 63, math.MaxUint64} {
		s := open()
		s.send(seq, testFlows(ws, 1, 0))
		wantCode(t, "seq "+itoa(int(seq>>32)), s.recvErr(), codes.InvalidArgument, "seq")
	}
	s := open()
	for seq := uint64(1); seq <= 3; seq++ {
		s.send(seq, testFlows(ws, 1, int(seq)))
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if got, dup := s.ack(); got != seq || dup {
			t.Fatalf("ack %d %v, want %d stored", got, dup, seq)
		}
	}
	s.send(5, testFlows(ws, 1, 5)) // 4 is skipped
	if got, dup := s.ack(); got != 5 || dup {
		t.Fatalf("ack %d %v", got, dup)
	}
	s.send(4, testFlows(ws, 1, 4)) // backwards, never stored
	wantCode(t, "backwards seq 4", s.recvErr(), codes.FailedPrecondition, "never stored")
	// A genuine replay after a reconnect: duplicates.
	s = open()
	for _, seq := range []uint64{2, 3, 5} {
		s.send(seq, testFlows(ws, 1, int(seq)))
		if got, dup := s.ack(); got != seq || !dup {
			t.Fatalf("replayed %d: ack %d dup %v, want a duplicate", seq, got, dup)
		}
	}
	s.stream.CloseSend()
	if _, err := s.stream.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	// A later session that starts with a seq below the mark that was never stored.
	s = open()
	s.send(4, testFlows(ws, 1, 4))
	wantCode(t, "seq 4 in a later session", s.recvErr(), codes.FailedPrecondition, "never stored")
	if h := hostOf(t, tc, "web"); h.FlowsReceived != 4 {
		t.Fatalf("host has %d flows, want 4 (seqs 1, 2, 3, 5 once each)", h.FlowsReceived)
	}
	if got := metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonOutOfOrder)); got != 2 {
		t.Fatalf("%v out-of-order refusals counted, want 2", got)
	}
}

// Flow and window-end times outside the skew window are refused with INVALID_ARGUMENT naming the
// field, never acked (issue 14, item 6: first_seen 1e19 made window -9.2e18).
func TestTimeSkewWindow(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour, Limits: Limits{MaxFlowAge: 30 * 24 * time.Hour, MaxFlowAhead: time.Hour}})
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{}))
	now := time.Now()
	ws := now.Unix() / 60 * 60
	seq := uint64(0)
	for _, c := range []struct {
		field string
		set   func(f *flowfleetv1.Flow)
	}{
		{"first_seen", func(f *flowfleetv1.Flow) { f.FirstSeen, f.LastSeen, f.WindowStart = 1e19, 1e19, 0 }},
		{"first_seen", func(f *flowfleetv1.Flow) {
			f.FirstSeen, f.LastSeen = float64(now.Add(-40*24*time.Hour).Unix()), float64(now.Unix())
		}},
		{"last_seen", func(f *flowfleetv1.Flow) { f.LastSeen = float64(now.Add(2 * time.Hour).Unix()) }},
		{"window_start", func(f *flowfleetv1.Flow) { f.WindowStart = 1 << 40 * 60 }},
	} {
		s, err := openSensor(t, conn, "s", 60)
		if err != nil {
			t.Fatal(err)
		}
		flows := testFlows(ws, 2, 0)
		c.set(flows[1])
		seq++
		s.send(seq, flows)
		wantCode(t, c.field, s.recvErr(), codes.InvalidArgument, "flows[1]."+c.field)
	}
	for _, we := range []*flowfleetv1.WindowEnd{{WindowStart: 1 << 40 * 60, WindowSeconds: 60},
		{WindowStart: ws, WindowSeconds: 60, FirstFrameTime: 1e15}, {WindowStart: ws / 120 * 120, WindowSeconds: 120}} {
		s, err := openSensor(t, conn, "s", 60)
		if err != nil {
			t.Fatal(err)
		}
		s.endWindow(we.WindowStart, we.WindowSeconds, we.FirstFrameTime)
		wantCode(t, "window end", s.recvErr(), codes.InvalidArgument, "window_end.")
	}
	// Flows of now, of 29 days ago and of the next minutes are taken.
	s, err := openSensor(t, conn, "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-29*24*time.Hour).Unix() / 60 * 60
	for _, w := range []int64{ws, old, ws + 60} {
		seq++
		s.send(seq, testFlows(w, 1, 0))
		if got, dup := s.ack(); got != seq || dup {
			t.Fatalf("window %d: ack %d %v", w, got, dup)
		}
	}
	if h := hostOf(t, tc, "web"); h.FlowsReceived != 3 {
		t.Fatalf("host has %d flows, want the 3 in range", h.FlowsReceived)
	}
	if got := metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonTimeRange)); got != 6 {
		t.Fatalf("%v time-range refusals counted, want 6", got)
	}
}

// A host holds at most MaxStreamsPerHost streams; others are refused (RESOURCE_EXHAUSTED), counted,
// and other hosts are not affected (issue 14, item 8).
func TestPerHostStreamLimit(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Limits: Limits{MaxStreamsPerHost: 2}})
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{}))
	var open []*sensorStream
	for i := 0; i < 2; i++ {
		s, err := openSensor(t, conn, "s", 60)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		open = append(open, s)
	}
	for i := 0; i < 3; i++ {
		_, err := openSensor(t, conn, "s", 60)
		wantCode(t, "a third stream", err, codes.ResourceExhausted, "--max-streams-per-host")
	}
	if _, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "db", pki.IssueOptions{})), "s", 60); err != nil {
		t.Fatalf("another host: %v", err)
	}
	if got := metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonHostStreams)); got != 3 {
		t.Fatalf("%v refusals counted, want 3", got)
	}
	// Once one ends, a new one is taken.
	open[0].stream.CloseSend()
	if _, err := open[0].stream.Recv(); err != io.EOF {
		t.Fatal(err)
	}
	waitFor(t, "the closed stream to be forgotten", func() bool { return tc.c.streams.count("web") == 1 })
	if _, err := openSensor(t, conn, "s", 60); err != nil {
		t.Fatalf("after one closed: %v", err)
	}
}

// A stream whose hello does not come, or that sends nothing after it, is closed, logged and counted
// (issue 14, item 8: 4,000 hello-then-silent streams were held forever).
func TestIdleStreamsClosed(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Limits: Limits{IdleTimeout: 300 * time.Millisecond, HelloTimeout: 300 * time.Millisecond}})
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{}))
	// Hello, a batch, then silence.
	s, err := openSensor(t, conn, "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(1_700_000_040, 1, 0))
	if seq, _ := s.ack(); seq != 1 {
		t.Fatalf("ack %d", seq)
	}
	wantCode(t, "silent after hello", s.recvErr(), codes.Unavailable, "idle")
	// No hello at all.
	st, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	wantCode(t, "no hello", err, codes.DeadlineExceeded, "no hello")
	if idle, hello := metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonIdle)),
		metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonHelloTimeout)); idle != 1 || hello != 1 {
		t.Fatalf("counted %v idle and %v hello timeouts, want 1 each", idle, hello)
	}
	waitFor(t, "the host's streams to be released", func() bool { return tc.c.streams.count("web") == 0 })
}

// Two streams with different stream ids for one host (two sensors with one certificate) are counted
// and shown in ListHosts; with OneStreamPerHost the second is refused, while a reconnect with the same
// stream id is still taken.
func TestSecondStreamIDForAHost(t *testing.T) {
	p := newTestPKI(t)
	files := p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{})
	reader := func(tc *testCollector) flowfleetv1.FleetServiceClient {
		return flowfleetv1.NewFleetServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	}
	t.Run("counted", func(t *testing.T) {
		tc := startCollector(t, p, Config{Window: 60 * time.Second})
		conn := dialAs(t, tc.addr, files)
		for _, id := range []string{"vm-a", "vm-b"} {
			if _, err := openSensor(t, conn, id, 60); err != nil {
				t.Fatal(err)
			}
		}
		if got := metricValue(t, tc.c.metrics.hostConflicts); got != 1 {
			t.Fatalf("%v conflicts counted, want 1", got)
		}
		resp, err := reader(tc).ListHosts(ctxT(t), &flowfleetv1.ListHostsRequest{})
		if err != nil || len(resp.GetHosts()) != 1 || resp.GetHosts()[0].GetOpenStreams() != 2 {
			t.Fatalf("ListHosts: %v, %v; want web with 2 open streams", resp, err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		tc := startCollector(t, p, Config{Window: 60 * time.Second, Limits: Limits{OneStreamPerHost: true}})
		conn := dialAs(t, tc.addr, files)
		if _, err := openSensor(t, conn, "vm-a", 60); err != nil {
			t.Fatal(err)
		}
		_, err := openSensor(t, conn, "vm-b", 60)
		wantCode(t, "a second stream id", err, codes.FailedPrecondition, "share one certificate")
		if _, err := openSensor(t, conn, "vm-a", 60); err != nil {
			t.Fatalf("the same stream id again (a reconnect): %v", err)
		}
		if got := metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonOneStream)); got != 1 {
			t.Fatalf("%v refusals counted, want 1", got)
		}
	})
}

// A batch the collector cannot encode is refused with an error status, neither stored nor acked (it
// used to be stored empty, marked and acked), so its replay is stored later.
func TestUnencodableBatchNotAcked(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	var fail atomic.Bool
	fail.Store(true)
	tc.c.encode = func(flows []*flowfleetv1.Flow) ([]byte, []int, error) {
		if fail.Load() {
			return nil, nil, errors.New("injected encode failure")
		}
		return flowpb.EncodeEnds(flows)
	}
	conn := dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{}))
	s, err := openSensor(t, conn, "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(1_700_000_040, 3, 0))
	wantCode(t, "unencodable batch", s.recvErr(), codes.Internal, "not stored, not acknowledged")
	if h := hostOf(t, tc, "web"); h.FlowsReceived != 0 {
		t.Fatalf("host has %d flows after a refused batch", h.FlowsReceived)
	}
	fail.Store(false)
	s, err = openSensor(t, conn, "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(1_700_000_040, 3, 0))
	if seq, dup := s.ack(); seq != 1 || dup {
		t.Fatalf("the replay: ack %d dup %v, want stored", seq, dup)
	}
	if h := hostOf(t, tc, "web"); h.FlowsReceived != 3 {
		t.Fatalf("host has %d flows, want 3", h.FlowsReceived)
	}
}

// Request fields are bounded as the proto documents (issue 14, item 10).
func TestRequestBounds(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	ctx := ctxT(t)
	ws := int64(1_700_000_040)
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(ws, 3, 0)
	s.send(1, flows)
	if seq, _ := s.ack(); seq != 1 {
		t.Fatal(seq)
	}
	s.endWindow(ws, 60, 0)
	id, _ := closer.SampleName("web", ws, 1)
	waitFor(t, "the sample", func() bool { x, _ := tc.st.GetSample(context.Background(), id); return x != nil })
	bad := testFlows(ws, 1, 0)
	bad[0].DstPort = "99999"
	s.send(2, bad)
	wantCode(t, "port 99999", s.recvErr(), codes.InvalidArgument, "dst_port")

	rc := dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{}))
	samples := flowfleetv1.NewSampleServiceClient(rc)
	page, err := samples.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id, PageSize: 1})
	if err != nil || page.GetNextPageToken() != "1" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	for _, tok := range []string{"+1", "01", "-0", " 1", "1 "} {
		_, err := samples.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id, PageToken: tok})
		wantCode(t, "flows page token "+tok, err, codes.InvalidArgument, "page_token")
	}
	for name, ts := range map[string]*timestamppb.Timestamp{"1e18 s": {Seconds: 1e18}, "negative nanos": {Seconds: 1, Nanos: -1},
		"nanos 1e9": {Seconds: 1, Nanos: 1e9}, "year 0": {Seconds: -62135596801}} {
		_, err := samples.ListSamples(ctx, &flowfleetv1.ListSamplesRequest{Since: ts})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("since %s: %v, want InvalidArgument", name, err)
		}
		_, err = samples.ListSamples(ctx, &flowfleetv1.ListSamplesRequest{Until: ts})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("until %s: %v, want InvalidArgument", name, err)
		}
	}
	if resp, err := samples.ListSamples(ctx, &flowfleetv1.ListSamplesRequest{Since: &timestamppb.Timestamp{Seconds: ws}, Until: &timestamppb.Timestamp{Seconds: 253402300799}}); err != nil || len(resp.GetSamples()) != 1 {
		t.Fatalf("valid range: %v, %v", resp, err)
	}
	fleet := flowfleetv1.NewFleetServiceClient(rc)
	for _, tok := range []string{store.HostPageToken("web") + "\n", store.HostPageToken("web") + "="} {
		_, err := fleet.ListHosts(ctx, &flowfleetv1.ListHostsRequest{PageToken: tok})
		wantCode(t, "host page token", err, codes.InvalidArgument, "page_token")
	}
}

// oneBatchSpool is a sensor spool (ship.Spool) holding one batch, which records acks.
type oneBatchSpool struct {
	seq   uint64
	batch *flowfleetv1.FlowBatch
	mu    sync.Mutex
	acked []uint64
}

func (s *oneBatchSpool) Next(after uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, after < s.seq && len(s.acked) == 0
}
func (s *oneBatchSpool) Read(uint64) (*flowfleetv1.FlowBatch, error) { return s.batch, nil }
func (s *oneBatchSpool) Ack(seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked = append(s.acked, seq)
	return true, nil
}
func (s *oneBatchSpool) Changed() <-chan struct{} { return nil }

// The real sensor shipper, refused a backwards seq, keeps the batch (no ack, so its spool keeps it),
// says so at error level and retries (issue 14, item 5: the sensor used to delete data never stored).
func TestShipperKeepsRefusedBatch(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	files := p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{})
	ws := int64(1_700_000_040)
	s, err := openSensor(t, dialAs(t, tc.addr, files), "sid", 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 2, 3, 5} {
		s.send(seq, testFlows(ws, 1, int(seq)))
		if got, _ := s.ack(); got != seq {
			t.Fatalf("ack %d", got)
		}
	}
	s.stream.CloseSend()
	if _, err := s.stream.Recv(); err != io.EOF {
		t.Fatal(err)
	}
	creds, err := auth.NewClientCredentials(files, "127.0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sp := &oneBatchSpool{seq: 4, batch: &flowfleetv1.FlowBatch{Seq: 4, Flows: testFlows(ws, 1, 4)}}
	var logs syncBuffer
	sh, err := ship.New(ship.Options{Addrs: []string{tc.addr}, Creds: creds, Spool: sp, StreamID: "sid", SoftwareVersion: "test",
		WindowSeconds: 60, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Backoff: ship.Backoff{Base: 10 * time.Millisecond, Multiplier: 1.5, Max: 50 * time.Millisecond, ResetAfter: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	waitFor(t, "the shipper to be refused twice", func() bool {
		return metricValue(t, tc.c.metrics.refusals.WithLabelValues(reasonOutOfOrder)) >= 2
	})
	cancel()
	<-done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.acked) != 0 {
		t.Fatalf("the shipper deleted %v from its spool", sp.acked)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "never stored") {
		t.Fatalf("the sensor's log does not say clearly what happened:\n%s", out)
	}
	if h := hostOf(t, tc, "web"); h.FlowsReceived != 4 {
		t.Fatalf("host has %d flows, want 4", h.FlowsReceived)
	}
}

// streamSet admits within the per-host limit and, with oneID, one stream id per host.
func TestStreamSetAdmission(t *testing.T) {
	s := newStreamSet()
	if a := s.open("h", "a", 2, true); a.err != nil || a.open != 1 {
		t.Fatalf("first: %+v", a)
	}
	if a := s.open("h", "b", 2, true); status.Code(a.err) != codes.FailedPrecondition || a.other != "a" {
		t.Fatalf("second id with oneID: %+v", a)
	}
	if a := s.open("h", "b", 2, false); a.err != nil || a.other != "a" || a.open != 2 {
		t.Fatalf("second id: %+v", a)
	}
	if a := s.open("h", "a", 2, false); status.Code(a.err) != codes.ResourceExhausted {
		t.Fatalf("third stream: %+v", a)
	}
	if n := s.close("h", "b"); n != 1 || s.count("h") != 1 {
		t.Fatalf("after a close: %d open", n)
	}
	if n := s.close("h", "a"); n != 0 || len(s.byHost) != 0 {
		t.Fatalf("after the last close: %d open, %d hosts kept", n, len(s.byHost))
	}
}
