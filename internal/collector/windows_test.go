package collector

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// readerClient dials the collector as a reader.
func readerClient(t *testing.T, p *pkitest.PKI, addr string) flowfleetv1.SampleServiceClient {
	t.Helper()
	return flowfleetv1.NewSampleServiceClient(dialAs(t, addr, p.Issue(t, auth.RoleReader, "reader", pki.IssueOptions{})))
}

// listOf lists the samples of host through the API.
func listOf(t *testing.T, c flowfleetv1.SampleServiceClient, host string) []*flowfleetv1.Sample {
	t.Helper()
	resp, err := c.ListSamples(context.Background(), &flowfleetv1.ListSamplesRequest{Host: host})
	if err != nil {
		t.Fatalf("ListSamples(%s): %v", host, err)
	}
	return resp.GetSamples()
}

// sendWindow sends n flows of window ws from a sensor named host and ends the window.
func sendWindow(t *testing.T, p *pkitest.PKI, addr, host string, ws int64, n int) {
	t.Helper()
	s, err := openSensor(t, dialAs(t, addr, p.Issue(t, auth.RoleSensor, host, pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatalf("sensor %s: %v", host, err)
	}
	s.send(1, testFlows(ws, n, 0))
	if seq, dup := s.ack(); seq != 1 || dup {
		t.Fatalf("sensor %s: ack %d dup %v", host, seq, dup)
	}
	s.endWindow(ws, 60, 0)
}

// Issue #14, item 1: a window whose sample cannot be written (here: a directory stands where its file
// goes) shows as write_failed with its error, is logged once, counted, retried with backoff, and never
// holds up other windows: a host with a 253-character name (a valid certificate name, whose plain file
// name would pass 255 bytes) gets its sample meanwhile. When the obstacle goes, a retry writes it.
func TestFailedWindowIsolatedAndLongHostWritten(t *testing.T) {
	p := newTestPKI(t)
	logs := &syncBuffer{}
	dataDir := t.TempDir()
	ws := int64(1_700_000_040)
	// "a…" sorts first: the stuck window is the oldest and first of the due list.
	stuck := "a-stuck"
	_, stuckFile := closer.SampleName(stuck, ws, 1)
	if err := os.MkdirAll(filepath.Join(dataDir, "samples", stuckFile, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	tc := startCollectorLog(t, p, Config{DataDir: dataDir, Window: 60 * time.Second, Grace: time.Hour,
		CloseRetryMin: 20 * time.Millisecond, CloseRetryMax: 100 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	client := readerClient(t, p, tc.addr)

	sendWindow(t, p, tc.addr, stuck, ws, 2)
	waitFor(t, "the stuck window's failure", func() bool {
		got := listOf(t, client, stuck)
		return len(got) == 1 && got[0].GetState() == flowfleetv1.SampleState_SAMPLE_STATE_WRITE_FAILED
	})
	long := strings.Repeat("h", 250) + ".io" // 253 characters
	sendWindow(t, p, tc.addr, long, ws, 3)
	var x *flowfleetv1.Sample
	waitFor(t, "the long host's sample", func() bool {
		got := listOf(t, client, long)
		if len(got) == 1 && got[0].GetState() == flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN {
			x = got[0]
		}
		return x != nil
	})
	if x.GetHost() != long || x.GetId() != long+"_1700000040" || x.GetFlowCount() != 3 {
		t.Fatalf("long host's sample: %v", x)
	}
	if n := len(x.GetFileName()); n > closer.MaxFileNameBytes || !strings.Contains(x.GetFileName(), "~") {
		t.Fatalf("file name %q (%d bytes): want a shortened name of at most %d", x.GetFileName(), n, closer.MaxFileNameBytes)
	}
	file, err := os.ReadFile(filepath.Join(tc.c.SampleDir(), x.GetFileName()))
	if err != nil {
		t.Fatal(err)
	}
	bf, err := bayseflow.Decode(file)
	if err != nil || bf.FileName != x.GetFileName() {
		t.Fatalf("the file's fileName %q (%v), want %q", bf.FileName, err, x.GetFileName())
	}
	if start, ok := sampleFileWindow(x.GetFileName()); !ok || start != ws {
		t.Fatalf("retention reads window %d (%v) from %q", start, ok, x.GetFileName())
	}

	st := listOf(t, client, stuck)[0]
	if !strings.Contains(st.GetWriteError(), stuckFile) {
		t.Fatalf("write_error %q does not say which file failed", st.GetWriteError())
	}
	waitFor(t, "retries", func() bool { return counterValue(tc.c.metrics.closeFailures) >= 3 })

	if err := os.RemoveAll(filepath.Join(tc.c.SampleDir(), stuckFile)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stuck window written after a retry", func() bool {
		got := listOf(t, client, stuck)
		return len(got) == 1 && got[0].GetState() == flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN && got[0].GetWriteError() == ""
	})
	// The state is visible before the closer logs the success: wait for the line, not for a moment.
	waitFor(t, "the log line of the retry that succeeded", func() bool {
		return strings.Contains(logs.String(), "window written after failed closes")
	})
	if out := logs.String(); strings.Count(out, "window close failed") != 1 {
		t.Fatalf("the failure was logged %d times (want once per window):\n%s", strings.Count(out, "window close failed"), out)
	}
}

// Issue #14, item 7: the per-window bound keeps a window's first flows, drops the rest without refusing
// their batch (it is acknowledged), counts them on the sample and in a metric, and logs the window once.
func TestWindowBoundDropsAndCounts(t *testing.T) {
	p := newTestPKI(t)
	logs := &syncBuffer{}
	tc := startCollectorLog(t, p, Config{Window: 60 * time.Second, Grace: time.Hour, MaxWindowFlows: 5},
		slog.New(slog.NewTextHandler(logs, nil)))
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "big01", pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	for seq, n := range []int{3, 4, 2} {
		s.send(uint64(seq+1), testFlows(ws, n, 10*seq))
		if got, dup := s.ack(); got != uint64(seq+1) || dup {
			t.Fatalf("batch %d: ack %d dup %v; a bounded batch is still acknowledged", seq+1, got, dup)
		}
	}
	s.endWindow(ws, 60, 0)
	client := readerClient(t, p, tc.addr)
	var x *flowfleetv1.Sample
	waitFor(t, "the sample", func() bool {
		if got := listOf(t, client, "big01"); len(got) == 1 {
			x = got[0]
		}
		return x != nil
	})
	if x.GetFlowCount() != 5 || x.GetFlowsDropped() != 4 {
		t.Fatalf("sample: %d flows, %d dropped; want 5 and 4", x.GetFlowCount(), x.GetFlowsDropped())
	}
	if got := counterValue(tc.c.metrics.windowDrops); got != 4 {
		t.Fatalf("flowfleet_collector_window_flows_dropped_total %v, want 4", got)
	}
	if n := strings.Count(logs.String(), "window reached its bound"); n != 1 {
		t.Fatalf("bound logged %d times, want once:\n%s", n, logs.String())
	}
	// The flows kept are the first ones sent.
	resp, err := client.ListSampleFlows(context.Background(), &flowfleetv1.ListSampleFlowsRequest{Id: x.GetId()})
	if err != nil || len(resp.GetFlows()) != 5 {
		t.Fatalf("flows: %d, %v", len(resp.GetFlows()), err)
	}
}

// Issue #14, item 7: ListSampleFlows pages through a sample stored in chunks in order, from any offset,
// and through a sample stored whole (before migration 00005); a token it did not make is refused.
func TestListSampleFlowsPages(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	ws := int64(1_700_000_040)
	const n = 2*store.FlowChunkFlows + 345
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "pages01", pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(ws, n, 0))
	s.ack()
	s.endWindow(ws, 60, 0)
	client := readerClient(t, p, tc.addr)
	id, _ := closer.SampleName("pages01", ws, 1)
	waitFor(t, "the sample", func() bool { x, _ := tc.st.GetSample(context.Background(), id); return x != nil })

	// An "old" sample: its flows stored whole, as before chunks.
	whole := testFlows(ws+60, 1500, 0)
	enc, err := flowpb.Encode(whole)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.st.SaveBatches(context.Background(), []store.Batch{{Host: "old01", StreamID: "s", Seq: 1, Received: time.Now(),
		Parts: []store.BatchPart{{WindowStart: ws + 60, WindowSeconds: 60, FlowCount: 1, Flows: []byte{}}}}}); err != nil {
		t.Fatal(err)
	}
	oldID, oldName := closer.SampleName("old01", ws+60, 1)
	if _, err := tc.st.CloseWindow(context.Background(), store.WindowRef{Host: "old01", WindowStart: ws + 60, WindowSeconds: 60},
		func(store.WindowContent) (store.NewSample, error) {
			return store.NewSample{ID: oldID, FileName: oldName, FlowCount: len(whole), State: store.StateWritten,
				Content: []byte("{}"), Flows: enc}, nil
		}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		id    string
		total int
		size  uint32
	}{{id, n, 700}, {id, n, 10000}, {oldID, len(whole), 400}} {
		var ports []string
		token, pages := "", 0
		for {
			resp, err := client.ListSampleFlows(context.Background(), &flowfleetv1.ListSampleFlowsRequest{Id: c.id, PageSize: c.size, PageToken: token})
			if err != nil {
				t.Fatalf("%s page %d: %v", c.id, pages, err)
			}
			pages++
			for _, f := range resp.GetFlows() {
				ports = append(ports, f.GetSrcPort())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if len(ports) != c.total || pages != (c.total+int(c.size)-1)/int(c.size) {
			t.Fatalf("%s: %d flows in %d pages of %d; want %d", c.id, len(ports), pages, c.size, c.total)
		}
		for i, port := range ports { // testFlows numbers source ports in time order, the sample's order
			if port != itoa(40000+i) {
				t.Fatalf("%s: flow %d has port %s; want %s (order or page boundaries wrong)", c.id, i, port, itoa(40000+i))
			}
		}
	}
	for _, bad := range []string{"+1", "-0", "01", "1e3", " 1", "abc", "99999999999", itoa(n + 1)} {
		_, err := client.ListSampleFlows(context.Background(), &flowfleetv1.ListSampleFlowsRequest{Id: id, PageToken: bad})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("page token %q: %v; want InvalidArgument", bad, err)
		}
	}
	resp, err := client.ListSampleFlows(context.Background(), &flowfleetv1.ListSampleFlowsRequest{Id: id, PageToken: itoa(n)})
	if err != nil || len(resp.GetFlows()) != 0 || resp.GetNextPageToken() != "" {
		t.Fatalf("page at the end: %d flows, token %q, %v; want an empty last page", len(resp.GetFlows()), resp.GetNextPageToken(), err)
	}
}

// Issue #14, item 11: temporary files a killed collector left in the sample directory are removed at
// start, and counted in a log line; sample files and other files stay.
func TestOrphanTempFilesRemovedAtStart(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	orphans := []string{".h_1700000040.bf.tmp123456", ".h_1700000040_r2.bf.tmp9", ".probe4242"}
	kept := []string{"h_1700000040.bf", ".hidden", ".h.bf.tmpx", "notes.tmp1"}
	for _, name := range append(append([]string{}, orphans...), kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(context.Background(), filepath.Join(dataDir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &syncBuffer{}
	if _, err := New(st, Config{DataDir: dataDir}, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	for _, name := range orphans {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("orphan %s still there (%v)", name, err)
		}
	}
	for _, name := range kept {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
	}
	if !strings.Contains(logs.String(), "files=3") {
		t.Errorf("start log does not count the 3 files removed:\n%s", logs.String())
	}
}

// SampleName: ids keep the full host; file names stay within closer.MaxFileNameBytes, stay distinct for hosts
// that share a long prefix, and give their window start back to retention.
func TestSampleNameBounded(t *testing.T) {
	short, shortFile := closer.SampleName("web01", 1_700_000_040, 2)
	if short != "web01_1700000040_r2" || shortFile != short+".bf" {
		t.Fatalf("short host: %s, %s", short, shortFile)
	}
	a := strings.Repeat("a", 200) + "-one"
	b := strings.Repeat("a", 200) + "-two"
	for _, rev := range []int{1, 2, 1 << 30} {
		idA, fileA := closer.SampleName(a, 1_700_000_040, rev)
		_, fileB := closer.SampleName(b, 1_700_000_040, rev)
		if !strings.HasPrefix(idA, a+"_") {
			t.Fatalf("id %q does not keep the full host", idA)
		}
		if len(fileA) > closer.MaxFileNameBytes || fileA == fileB {
			t.Fatalf("file names %q and %q: want distinct, at most %d bytes", fileA, fileB, closer.MaxFileNameBytes)
		}
		if start, ok := sampleFileWindow(fileA); !ok || start != 1_700_000_040 {
			t.Fatalf("window of %q: %d, %v", fileA, start, ok)
		}
	}
	// The longest name that fits keeps its plain form.
	edge := strings.Repeat("e", closer.MaxFileNameBytes-len("_1700000040.bf"))
	if _, f := closer.SampleName(edge, 1_700_000_040, 1); f != edge+"_1700000040.bf" {
		t.Fatalf("a name of exactly %d bytes was shortened: %q", closer.MaxFileNameBytes, f)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// Retention's sweep keeps the file of a sample whose name was shortened (its id is not the file name
// without ".bf": the sample is found by file name) and lets go of one whose sample is gone.
func TestSweepKnowsShortenedNames(t *testing.T) {
	dataDir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dataDir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := New(st, Config{DataDir: dataDir}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_100)
	long := strings.Repeat("l", 253)
	w := store.WindowRef{Host: long, WindowStart: ws, WindowSeconds: 300}
	if _, err := st.SaveBatches(context.Background(), []store.Batch{{Host: long, StreamID: "s", Seq: 1, Received: time.Now(),
		Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 300, FlowCount: 1, Flows: []byte{}}}}}); err != nil {
		t.Fatal(err)
	}
	id, name := closer.SampleName(long, ws, 1)
	if _, err := st.CloseWindow(context.Background(), w, func(store.WindowContent) (store.NewSample, error) {
		return store.NewSample{ID: id, FileName: name, State: store.StateWritten, Content: []byte("{}"), Flows: []byte{}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if kept, err := c.sampleFileKept(context.Background(), name); err != nil || !kept {
		t.Fatalf("file %s of a stored sample: kept %v, %v", name, kept, err)
	}
	_, other := closer.SampleName(strings.Repeat("m", 253), ws, 1)
	if kept, err := c.sampleFileKept(context.Background(), other); err != nil || kept {
		t.Fatalf("file %s of no sample: kept %v, %v", other, kept, err)
	}
}
