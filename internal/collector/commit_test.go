package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/store"
)

// failingStore fails SaveBatches while fail is set.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

func (f *failingStore) SaveBatches(ctx context.Context, b []store.Batch) ([]store.Outcome, error) {
	if f.fail.Load() {
		return nil, errors.New("injected store failure")
	}
	return f.Store.SaveBatches(ctx, b)
}

// A batch queued behind a batch of the same stream that failed to commit must not be stored: the
// stream's dedup mark would pass the failed batch, and its replay would be acknowledged as a duplicate
// without ever being stored.
func TestCommitFailureStopsTheStream(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := &failingStore{Store: st}
	c, err := New(fs, Config{DataDir: dir, Window: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	commit := func(failed *atomic.Bool, seq uint64) commitResult {
		r, _ := c.newCommit("h", "s", &flowfleetv1.FlowBatch{Seq: seq, Flows: testFlows(ws, 2, int(seq)*10)})
		r.failed = failed
		c.commit([]*commitReq{r})
		return <-r.done
	}
	var first atomic.Bool
	if r := commit(&first, 1); r.err != nil || r.outcome != store.Stored {
		t.Fatalf("batch 1: %+v", r)
	}
	fs.fail.Store(true)
	if r := commit(&first, 2); r.err == nil {
		t.Fatal("batch 2 did not fail")
	}
	fs.fail.Store(false)
	if r := commit(&first, 3); r.err == nil {
		t.Fatal("batch 3 was stored behind the failed batch 2")
	}
	// The sensor reconnects and replays 2 and 3: both are new to the store.
	var second atomic.Bool
	for _, seq := range []uint64{2, 3} {
		if r := commit(&second, seq); r.err != nil || r.outcome != store.Stored {
			t.Fatalf("replayed batch %d: %+v, want stored", seq, r)
		}
	}
	closed := c.closer.CloseWindow(context.Background(), store.WindowRef{Host: "h", WindowStart: ws, WindowSeconds: 60})
	s, err := st.GetSample(context.Background(), "h_"+strconv.FormatInt(ws, 10))
	if !closed || err != nil || s.FlowCount != 6 {
		t.Fatalf("sample %+v, %v; want 6 flows", s, err)
	}
}

// benchCollector returns a collector with 10 s windows on a SQLite store in a temporary directory,
// closed when the benchmark ends.
func benchCollector(b *testing.B) (*Collector, store.Store) {
	b.Helper()
	dir := b.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c, err := New(st, Config{DataDir: dir, Window: 10 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return c, st
}

// BenchmarkCloseWindow closes windows of 2,000 flows (ten batches of 200, as a sensor sending 200
// flows/s gives in a 10 s window) on SQLite with the collector's sample builder: decode, order, write
// the .bf file after recording the sample (internal/collector/closer).
func BenchmarkCloseWindow(b *testing.B) {
	c, st := benchCollector(b)
	ctx := context.Background()
	ws := int64(1_700_000_000)
	open := func(host string) {
		for seq := uint64(1); seq <= 10; seq++ {
			r, _ := c.newCommit(host, "s", &flowfleetv1.FlowBatch{Seq: seq, Flows: testFlows(ws, 200, int(seq)*200)})
			if _, err := st.SaveBatches(ctx, []store.Batch{r.batch}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		host := fmt.Sprintf("h%06d", i)
		open(host)
		b.StartTimer()
		if !c.closer.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 10}) {
			b.Fatalf("close %s failed", host)
		}
	}
}

// BenchmarkCloseWindowParallel is BenchmarkCloseWindow with four closes at a time, as closeDue runs
// them; windows of 1,000 flows.
func BenchmarkCloseWindowParallel(b *testing.B) {
	c, st := benchCollector(b)
	ctx := context.Background()
	ws := int64(1_700_000_000)
	var hosts []string
	for i := 0; i < b.N; i++ {
		host := fmt.Sprintf("h%06d", i)
		hosts = append(hosts, host)
		for seq := uint64(1); seq <= 10; seq++ {
			r, _ := c.newCommit(host, "s", &flowfleetv1.FlowBatch{Seq: seq, Flows: testFlows(ws, 100, int(seq)*100)})
			if _, err := st.SaveBatches(ctx, []store.Batch{r.batch}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			host := hosts[next.Add(1)-1]
			if !c.closer.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 10}) {
				b.Errorf("close %s failed", host)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "closes/s")
}
