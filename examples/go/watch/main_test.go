package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
)

const testTimeout = 20 * time.Second

// syncBuffer is a bytes.Buffer that run's goroutine writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testFleet is a CA in a temporary directory (internal/pki/pkitest) and a real collector serving mTLS
// on 127.0.0.1.
type testFleet struct {
	*pkitest.PKI
	addr string
}

func (f *testFleet) issue(t *testing.T, role auth.Role, name string) auth.Files {
	t.Helper()
	return f.Issue(t, role, name, pki.IssueOptions{})
}

func startFleet(t *testing.T) *testFleet {
	t.Helper()
	f := &testFleet{PKI: pkitest.New(t)}
	log := slog.New(slog.DiscardHandler)
	dataDir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dataDir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The test's flows are of 2023: no bound on their age (collector.Limits.MaxFlowAge).
	c, err := collector.New(st, collector.Config{DataDir: dataDir, Window: time.Minute, Grace: time.Hour,
		CloseInterval: 50 * time.Millisecond, Limits: collector.Limits{MaxFlowAge: -1}}, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := auth.NewServerCredentials(f.issue(t, auth.RoleCollector, "collector"), log)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := c.NewGRPCServer(creds)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		c.Drain()
		srv.Stop()
		cancel()
		<-done
		st.Close()
	})
	return f
}

// sensor is a minimal IngestService client: hello, then one batch and a window end per window.
type sensor struct {
	t      *testing.T
	stream flowfleetv1.IngestService_IngestClient
	seq    uint64
}

func openSensor(t *testing.T, f *testFleet, host string) *sensor {
	t.Helper()
	creds, err := auth.NewClientCredentials(f.issue(t, auth.RoleSensor, host), "127.0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	stream, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{
		StreamId: "watch-test", SoftwareVersion: "test/1", WindowSeconds: 60}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // Welcome
		t.Fatal(err)
	}
	return &sensor{t: t, stream: stream}
}

// window sends n flows for the window starting at ws, waits for their ack and ends the window.
func (s *sensor) window(ws int64, n int) {
	s.t.Helper()
	s.seq++
	var flows []*flowfleetv1.Flow
	for i := 0; i < n; i++ {
		flows = append(flows, &flowfleetv1.Flow{SrcAddr: "10.0.0.5", SrcPort: strconv.Itoa(40000 + i), DstAddr: "93.184.216.34",
			DstPort: "443", DstName: "example.com", NameSource: flowfleetv1.NameSource_NAME_SOURCE_PASSIVE,
			Protocol: flowfleetv1.Protocol_PROTOCOL_TCP, SrcPkts: 3, SrcBytes: 100, DstPkts: 2, DstBytes: 1000,
			FirstSeen: float64(ws) + 1 + float64(i)/1000, LastSeen: float64(ws) + 2, WindowStart: ws})
	}
	if err := s.stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{
		Seq: s.seq, Flows: flows}}}); err != nil {
		s.t.Fatal(err)
	}
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.t.Fatalf("waiting for the ack of batch %d: %v", s.seq, err)
		}
		if resp.GetAck().GetSeq() == s.seq {
			break
		}
	}
	if err := s.stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{
		WindowStart: ws, WindowSeconds: 60}}}); err != nil {
		s.t.Fatal(err)
	}
}

// startWatch runs the example's run with args (plus the reader's files) until the test ends or stop is
// called, which returns run's error.
func startWatch(t *testing.T, f *testFleet, reader auth.Files, args ...string) (out *syncBuffer, stop func() error) {
	t.Helper()
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	args = append([]string{"--addr", f.addr, "--ca", reader.CAFile, "--cert", reader.CertFile, "--key", reader.KeyFile}, args...)
	go func() { errc <- run(ctx, args, out, io.Discard) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return out, stop
}

func waitForOutput(t *testing.T, out *syncBuffer, re *regexp.Regexp, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if re.MatchString(out.String()) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// writeUntilPrinted writes one window after another from first on, with n flows each, until the watch's
// output matches want(window start): WatchSamples has no backlog and its stream gives no sign of being
// established, so the first window may come too early.
func writeUntilPrinted(t *testing.T, s *sensor, out *syncBuffer, first int64, n int, want func(start int64) *regexp.Regexp) {
	t.Helper()
	for k := 0; k < 20; k++ {
		start := first + int64(60*k)
		s.window(start, n)
		if waitForOutput(t, out, want(start), time.Second) {
			return
		}
	}
	t.Fatalf("the watch printed no matching sample after 20 windows; output:\n%s", out.String())
}

func TestWatchPrintsSamplesAsTheyAreWritten(t *testing.T) {
	f := startFleet(t)
	reader := f.issue(t, auth.RoleReader, "alice")
	out, stop := startWatch(t, f, reader)
	s := openSensor(t, f, "web01")

	writeUntilPrinted(t, s, out, 1_700_000_040, 3, func(start int64) *regexp.Regexp {
		id := fmt.Sprintf("web01_%d", start)
		return regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  written  ` + id + `  host=web01  window=` +
			time.Unix(start, 0).UTC().Format(time.RFC3339) + `  rev=1  flows=3  bytes=\d+  file=` + id + `\.bf$`)
	})
	// Only written samples are printed by default: no other states.
	if regexp.MustCompile(`  (open|closed|new) `).MatchString(out.String()) {
		t.Errorf("default output shows events other than written:\n%s", out.String())
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}

	// --existing lists what is already written (the first window is); --all then shows every event of
	// later windows.
	out2, stop2 := startWatch(t, f, reader, "--existing", "--all")
	existing := regexp.MustCompile(`(?m)^\S+  existing  web01_1700000040  host=web01  window=2023-11-14T22:14:00Z  rev=1  flows=3  bytes=\d+  file=web01_1700000040\.bf$`)
	if !waitForOutput(t, out2, existing, testTimeout) {
		t.Fatalf("--existing did not list web01_1700000040; output:\n%s", out2.String())
	}
	writeUntilPrinted(t, s, out2, 1_700_000_040+60*100, 1, func(start int64) *regexp.Regexp {
		return regexp.MustCompile(fmt.Sprintf(`(?m)^\S+  [a-z_]+ -> written  web01_%d  host=web01  .*  flows=1  `, start))
	})
	if err := stop2(); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("output:\n%s", out2.String())
}

func TestWatchNeedsCertificates(t *testing.T) {
	err := run(context.Background(), []string{"--addr", "127.0.0.1:1"}, io.Discard, io.Discard)
	if err == nil || !regexp.MustCompile(`--ca, --cert and --key are required`).MatchString(err.Error()) {
		t.Fatalf("run without certificates: %v", err)
	}
}
