package closer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/backoff"
	"github.com/flowfleet/flowfleet/internal/store"
)

// commitWithoutFile records a sample of host's window ws as a close that crashed after its commit
// leaves it: state closed, content stored, no file.
func commitWithoutFile(t *testing.T, st store.Store, host string, ws int64, content string) *store.Sample {
	t.Helper()
	ctx := context.Background()
	if _, err := st.SaveBatches(ctx, []store.Batch{{Host: host, StreamID: "s", Seq: 1, Received: time.Now(),
		Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte{}}}}}); err != nil {
		t.Fatal(err)
	}
	id, name := SampleName(host, ws, 1)
	s, err := st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60},
		func(store.WindowContent) (store.NewSample, error) {
			return store.NewSample{ID: id, FileName: name, State: store.StateClosed, Content: []byte(content), Flows: []byte{}}, nil
		})
	if err != nil || s == nil || s.State != store.StateClosed {
		t.Fatalf("CloseWindow: %+v, %v", s, err)
	}
	return s
}

func testCloser(t *testing.T) (*Closer, store.Store, string, *[]string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	samples := filepath.Join(dir, "samples")
	if err := os.Mkdir(samples, 0o755); err != nil {
		t.Fatal(err)
	}
	var written []string
	m := Metrics{OpenWindows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "e"}), CloseFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "f"}),
		SamplesWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: "w"})}
	c := New(st, Config{Dir: samples, Grace: time.Hour, Budget: 1 << 20, Retry: backoff.Policy{Base: time.Millisecond, Max: time.Millisecond}},
		slog.New(slog.DiscardHandler), m, func(s *store.Sample, _ Built) { written = append(written, s.ID) })
	return c, st, samples, &written
}

// A crash between the commit and the file write loses no file: Recover writes it from the stored
// content and marks the sample written.
func TestRecoverWritesCommittedSamples(t *testing.T) {
	c, st, dir, written := testCloser(t)
	s := commitWithoutFile(t, st, "web01", 1_700_000_040, "the committed content")
	if err := c.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, s.FileName))
	if err != nil || string(got) != "the committed content" {
		t.Fatalf("file: %q, %v", got, err)
	}
	x, err := st.GetSample(context.Background(), s.ID)
	if err != nil || x.State != store.StateWritten {
		t.Fatalf("sample after Recover: %+v, %v", x, err)
	}
	if len(*written) != 1 || (*written)[0] != s.ID {
		t.Fatalf("written callbacks %v, want [%s]", *written, s.ID)
	}
}

// A file that cannot be written leaves its sample write_failed with the error and its content stored;
// once the obstacle goes, the sweep writes it.
func TestFailedFileWrittenBySweep(t *testing.T) {
	c, st, dir, written := testCloser(t)
	s := commitWithoutFile(t, st, "db01", 1_700_000_040, "content")
	if err := os.MkdirAll(filepath.Join(dir, s.FileName, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	x, err := st.GetSample(context.Background(), s.ID)
	if err != nil || x.State != store.StateWriteFailed || !strings.Contains(x.WriteError, s.FileName) {
		t.Fatalf("sample after a failed write: %+v, %v", x, err)
	}
	if len(*written) != 0 {
		t.Fatalf("written callbacks %v for a failed write", *written)
	}
	if err := os.RemoveAll(filepath.Join(dir, s.FileName)); err != nil {
		t.Fatal(err)
	}
	c.CloseDue(context.Background(), time.Now().Add(time.Second))
	x, err = st.GetSample(context.Background(), s.ID)
	if err != nil || x.State != store.StateWritten || x.WriteError != "" {
		t.Fatalf("sample after the sweep: %+v, %v", x, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, s.FileName)); err != nil || string(got) != "content" {
		t.Fatalf("file: %q, %v", got, err)
	}
}

// A sample another collector committed and never wrote (it died) is written by this one's sweep once it
// has been closed for orphanAge, and not before: a younger one may be being written right now.
func TestSweepWritesOrphans(t *testing.T) {
	c, st, dir, _ := testCloser(t)
	s := commitWithoutFile(t, st, "orphan01", time.Now().Add(-time.Hour).Unix()/60*60, "orphaned")
	c.CloseDue(context.Background(), time.Now())
	if x, err := st.GetSample(context.Background(), s.ID); err != nil || x.State != store.StateClosed {
		t.Fatalf("a sample closed just now was written by the sweep: %+v, %v", x, err)
	}
	c.mu.Lock()
	c.orphanAt = time.Time{} // the next look is due
	c.mu.Unlock()
	c.CloseDue(context.Background(), time.Now().Add(orphanAge+time.Second))
	if got, err := os.ReadFile(filepath.Join(dir, s.FileName)); err != nil || string(got) != "orphaned" {
		t.Fatalf("orphan's file: %q, %v", got, err)
	}
	if x, err := st.GetSample(context.Background(), s.ID); err != nil || x.State != store.StateWritten {
		t.Fatalf("orphan after the sweep: %+v, %v", x, err)
	}
}
