package collector

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// backends runs a test on SQLite and, when FLOWFLEET_TEST_POSTGRES is set, on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "flowfleet.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, storetest.PostgresDSN(t)) })
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// retentionRig is a collector with a fake retention clock, driven by hand: batches are committed and
// windows closed by direct calls, pruning passes run with prune.
type retentionRig struct {
	t     *testing.T
	c     *Collector
	st    store.Store
	log   *syncBuffer
	clock time.Time
	seq   uint64
}

func newRetentionRig(t *testing.T, dsn string, cfg Config) *retentionRig {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &retentionRig{t: t, st: st, log: &syncBuffer{}, clock: time.Unix(4_000_000_020, 0)}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Window = time.Minute
	cfg.Now = func() time.Time { return r.clock }
	r.c, err = New(st, cfg, slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// windowAgo is the start of the window that began d before the rig's clock.
func (r *retentionRig) windowAgo(d time.Duration) int64 {
	return r.clock.Add(-d).Unix() / 60 * 60
}

// send commits one batch of flows from stream "s" of host h (with the given seq, or the next one).
func (r *retentionRig) send(h string, seq uint64, flows []*flowfleetv1.Flow) commitResult {
	r.t.Helper()
	if seq == 0 {
		r.seq++
		seq = r.seq
	}
	req, _ := r.c.newCommit(h, "s", &flowfleetv1.FlowBatch{Seq: seq, Flows: flows})
	r.c.commit([]*commitReq{req})
	res := <-req.done
	if res.err != nil {
		r.t.Fatalf("commit %d: %v", seq, res.err)
	}
	return res
}

// close marks the window ended and closes what is due.
func (r *retentionRig) close(h string, ws int64) {
	r.t.Helper()
	if err := r.st.EndWindow(context.Background(), store.WindowRef{Host: h, WindowStart: ws, WindowSeconds: 60}, 0); err != nil {
		r.t.Fatal(err)
	}
	r.c.closer.CloseDue(context.Background(), r.clock)
}

func (r *retentionRig) prune() pruneReport {
	r.t.Helper()
	rep, err := r.c.prune(context.Background())
	if err != nil {
		r.t.Fatalf("prune: %v", err)
	}
	return rep
}

func (r *retentionRig) sample(id string) *store.Sample {
	r.t.Helper()
	x, err := r.st.GetSample(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return x
}

func (r *retentionRig) file(name string) []byte {
	b, err := os.ReadFile(filepath.Join(r.c.SampleDir(), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("not a counter or gauge: %v", &m)
	return 0
}

// Old samples go with their files, recent ones stay; batches of closed windows go after
// --batch-retention, and a late batch then makes a revision identical to the one the batches would
// have made; a replayed batch is still a duplicate.
func TestRetentionPrunes(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		r := newRetentionRig(t, dsn, Config{Retention: 24 * time.Hour, BatchRetention: time.Hour, Grace: 10 * time.Second})
		old, recent, fresh := r.windowAgo(48*time.Hour), r.windowAgo(2*time.Hour), r.windowAgo(10*time.Minute)
		oldFlows, recentFlows, freshFlows := testFlows(old, 3, 0), testFlows(recent, 2, 0), testFlows(fresh, 1, 0)
		r.send("h", 0, oldFlows)
		r.send("h", 0, recentFlows)
		r.send("h", 0, freshFlows)
		for _, ws := range []int64{old, recent, fresh} {
			r.close("h", ws)
		}
		oldID, oldName := closer.SampleName("h", old, 1)
		recentID, recentName := closer.SampleName("h", recent, 1)
		freshID, freshName := closer.SampleName("h", fresh, 1)
		for _, name := range []string{oldName, recentName, freshName} {
			if r.file(name) == nil {
				t.Fatalf("%s was not written", name)
			}
		}
		// Files of samples another collector pruned (their rows are gone), and files that are not samples.
		_, strayOld := closer.SampleName("other", old, 2)
		_, strayRecent := closer.SampleName("other", recent, 1)
		for _, name := range []string{strayOld, strayRecent, "notes.txt", "." + oldName + ".tmp123", "x_" + itoa(int(old)) + "_rx.bf"} {
			if err := os.WriteFile(filepath.Join(r.c.SampleDir(), name), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}

		rep := r.prune()
		if rep.Samples != 1 || rep.Windows != 1 || rep.Files != 2 || rep.Pruned != 1 || rep.Batches != 2 || rep.Unrelayed != 0 {
			t.Fatalf("pruning pass %+v; want the old sample, its file and the stray old file, the recent window's batches", rep)
		}
		if r.sample(oldID) != nil || r.file(oldName) != nil || r.file(strayOld) != nil {
			t.Fatal("the old sample or its file is still there")
		}
		if r.sample(recentID) == nil || r.file(recentName) == nil || r.sample(freshID) == nil || r.file(freshName) == nil {
			t.Fatal("a recent sample or its file was pruned")
		}
		for _, name := range []string{strayRecent, "notes.txt", "." + oldName + ".tmp123", "x_" + itoa(int(old)) + "_rx.bf"} {
			if r.file(name) == nil {
				t.Errorf("%s was removed", name)
			}
		}
		m := r.c.metrics
		for name, want := range map[string]struct {
			c prometheus.Collector
			v float64
		}{
			"pruned samples": {m.prunedSamples, 1}, "pruned files": {m.prunedFiles, 2}, "pruned windows": {m.prunedWindows, 1},
			"pruned batches": {m.prunedBatches, 2}, "oldest sample": {m.oldestSample, float64(recent)},
			"ok runs": {m.pruneRuns.WithLabelValues("ok"), 1},
		} {
			if got := metricValue(t, want.c); got != want.v {
				t.Errorf("metric %s = %v, want %v", name, got, want.v)
			}
		}
		logs := r.log.String()
		for _, want := range []string{"msg=pruned ", "samples_deleted=1", "files_removed=2", "windows_batches_pruned=1", "batches_deleted=2",
			"oldest_sample_kept=" + time.Unix(recent, 0).UTC().Format("2006-01-02T15:04:05")} {
			if !strings.Contains(logs, want) {
				t.Errorf("the pruning log lacks %q:\n%s", want, logs)
			}
		}
		if again := r.prune(); !again.empty() {
			t.Fatalf("a second pass pruned %+v", again)
		}

		// A late batch for the recent window, whose batches are gone: revision 2 is exactly what the
		// batches would have made.
		late := testFlows(recent, 2, 10)
		if res := r.send("h", 0, late); res.outcome == store.Duplicate {
			t.Fatal("the late batch was taken for a duplicate")
		}
		r.close("h", recent)
		id2, name2 := closer.SampleName("h", recent, 2)
		x := r.sample(id2)
		if x == nil || x.FlowCount != 4 {
			t.Fatalf("revision 2 after pruning: %+v, want 4 flows", x)
		}
		got := r.file(name2)
		gotF, err := bayseflow.Decode(got)
		if err != nil {
			t.Fatal(err)
		}
		// Byte for byte, but for the hash, which is random.
		want := bayseflow.Encode(closer.BuildSample(append(append([]*flowfleetv1.Flow{}, recentFlows...), late...), 0), name2, gotF.Hash)
		if !bytes.Equal(got, want) {
			t.Fatalf("revision 2 built after pruning differs from one built from all batches:\n got %s\nwant %s", got, want)
		}
		if content, _ := r.st.SampleContent(context.Background(), id2); !bytes.Equal(content, want) {
			t.Fatal("revision 2's stored content differs from its file")
		}
		if got := metricValue(t, m.revisionsAfterPrune.WithLabelValues("pruned_revision")); got != 1 {
			t.Errorf("revisions after prune: %v, want 1", got)
		}
		if !strings.Contains(r.log.String(), "late batch for a window whose batches were pruned") {
			t.Error("the late batch after pruning was not logged")
		}
		if r.file(recentName) == nil {
			t.Error("revision 1's file went when revision 2 was written")
		}

		// Replays of pruned batches are still duplicates: the dedup marks are never pruned.
		for seq := uint64(1); seq <= 2; seq++ {
			if res := r.send("h", seq, oldFlows); res.outcome != store.Duplicate {
				t.Fatalf("batch %d replayed after pruning was stored again", seq)
			}
		}
		if n, _ := r.st.CountOpenWindows(context.Background()); n != 0 {
			t.Fatalf("replays opened %d windows", n)
		}

		// A batch for a window past the retention is kept, written, and goes at the next pass.
		r.send("h", 0, testFlows(old, 1, 20))
		r.close("h", old)
		if r.sample(oldID) == nil || r.file(oldName) == nil {
			t.Fatal("a batch for a window past the retention was not written")
		}
		if !strings.Contains(r.log.String(), "sample written for a window older than --retention") {
			t.Error("a sample past the retention was not warned about")
		}
		if rep := r.prune(); rep.Samples != 1 || rep.Files != 1 || r.sample(oldID) != nil || r.file(oldName) != nil {
			t.Fatalf("the past-retention sample was not pruned: %+v", rep)
		}
	})
}

// countingStore records the windows of each prune call.
type countingStore struct {
	store.Store
	mu             sync.Mutex
	samples, batch []int
}

func (s *countingStore) PruneSamples(ctx context.Context, r store.PruneRequest) (store.PruneResult, error) {
	res, err := s.Store.PruneSamples(ctx, r)
	s.mu.Lock()
	s.samples = append(s.samples, res.Windows)
	s.mu.Unlock()
	return res, err
}

func (s *countingStore) PruneBatches(ctx context.Context, r store.PruneRequest) (store.PruneResult, error) {
	res, err := s.Store.PruneBatches(ctx, r)
	s.mu.Lock()
	s.batch = append(s.batch, res.Windows)
	s.mu.Unlock()
	return res, err
}

// A backlog of more windows than one pruning transaction takes goes in one pass, a chunk a call.
func TestRetentionChunks(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		r := newRetentionRig(t, dsn, Config{Retention: 24 * time.Hour, BatchRetention: time.Hour, PruneMaxWindows: 2})
		cs := &countingStore{Store: r.st}
		r.c.store = cs
		var names []string
		for i := 0; i < 7; i++ {
			ws := r.windowAgo(72*time.Hour) + int64(i)*60
			r.send("h", 0, testFlows(ws, 2, 0))
			r.close("h", ws)
			_, name := closer.SampleName("h", ws, 1)
			names = append(names, name)
		}
		for i := 0; i < 5; i++ {
			ws := r.windowAgo(3*time.Hour) + int64(i)*60
			r.send("h", 0, testFlows(ws, 2, 0))
			r.close("h", ws)
		}
		rep := r.prune()
		if rep.Samples != 7 || rep.Windows != 7 || rep.Files != 7 || rep.Pruned != 5 || rep.Batches != 12 {
			t.Fatalf("pruning pass %+v; want 7 windows deleted and 5 pruned, 2 a transaction", rep)
		}
		if !slices.Equal(cs.samples, []int{2, 2, 2, 1, 0}) || !slices.Equal(cs.batch, []int{2, 2, 1, 0}) {
			t.Fatalf("windows a prune call: samples %v, batches %v; want at most 2 each", cs.samples, cs.batch)
		}
		for _, name := range names {
			if r.file(name) != nil {
				t.Errorf("%s is still there", name)
			}
		}
	})
}

// The pruner runs once when the collector starts, and stops with it.
func TestPrunerRunsAtStartAndStops(t *testing.T) {
	dir := t.TempDir()
	r := newRetentionRig(t, filepath.Join(dir, "flowfleet.db"), Config{DataDir: dir, Retention: 24 * time.Hour})
	ws := r.windowAgo(48 * time.Hour)
	r.send("h", 0, testFlows(ws, 1, 0))
	r.close("h", ws)
	id, _ := closer.SampleName("h", ws, 1)
	if r.c.cfg.PruneInterval != time.Hour {
		t.Fatalf("prune interval %s, want 1h (a tenth of 24h, at most an hour)", r.c.cfg.PruneInterval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.c.Run(ctx); close(done) }()
	// Wait for the pass to end, not for the sample to go: the sample goes in the pass's first step, and a
	// cancel between that step and the batches' one made the pass count as "canceled" (flaky under -race).
	waitFor(t, "the pruning pass at start", func() bool {
		return metricValue(t, r.c.metrics.pruneRuns.WithLabelValues("ok")) == 1
	})
	if r.sample(id) != nil {
		t.Fatal("the pass at start did not prune the sample past retention")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if got := metricValue(t, r.c.metrics.pruneRuns.WithLabelValues("ok")); got != 1 {
		t.Fatalf("%v pruning passes, want 1", got)
	}
}

// A pass stopped by the context ends at once and says so.
func TestPruneCanceled(t *testing.T) {
	dir := t.TempDir()
	r := newRetentionRig(t, filepath.Join(dir, "flowfleet.db"), Config{DataDir: dir, Retention: 24 * time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.c.prune(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("prune with a canceled context: %v", err)
	}
	if got := metricValue(t, r.c.metrics.pruneRuns.WithLabelValues("canceled")); got != 1 {
		t.Fatalf("canceled passes %v, want 1", got)
	}
}

func TestRetentionConfig(t *testing.T) {
	base := Config{Window: time.Minute, Grace: time.Minute}
	for _, c := range []struct {
		retention, batch time.Duration
		err              string
		interval         time.Duration
	}{
		{0, 0, "", time.Hour},
		{720 * time.Hour, 24 * time.Hour, "", time.Hour},
		{0, 24 * time.Hour, "", time.Hour},
		{720 * time.Hour, 0, "", time.Hour},
		{24 * time.Hour, 30 * time.Minute, "", 3 * time.Minute},
		{time.Hour, 10 * time.Second, "", 10 * time.Second},
		{time.Hour, 2 * time.Hour, "--batch-retention must be at most --retention", 0},
		{-time.Hour, 0, "negative", 0},
		{0, -time.Hour, "negative", 0},
		{90 * time.Second, 0, "shorter than a window and its grace", 0},
	} {
		cfg := base
		cfg.Retention, cfg.BatchRetention = c.retention, c.batch
		err := cfg.checkRetention()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("retention %s, batches %s: %v", c.retention, c.batch, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("retention %s, batches %s: %v, want an error saying %q", c.retention, c.batch, err, c.err)
		case c.err == "" && cfg.PruneInterval != c.interval:
			t.Errorf("retention %s, batches %s: prune every %s, want %s", c.retention, c.batch, cfg.PruneInterval, c.interval)
		}
	}
}

func TestSampleFileWindow(t *testing.T) {
	for name, want := range map[string]int64{
		"web01_1700000040.bf":       1700000040,
		"web01_1700000040_r2.bf":    1700000040,
		"web_r2_1700000040.bf":      1700000040,
		"a_b_c_1700000040_r17.bf":   1700000040,
		"web01_1700000040_r1.bf":    -1, // revision 1 has no suffix
		"web01_1700000040_rx.bf":    -1,
		"web01_1700000040.bf.tmp":   -1,
		"1700000040.bf":             -1,
		"_1700000040.bf":            -1,
		"web01_-5.bf":               -1,
		"web01_notanumber.bf":       -1,
		"web01_1700000040_r2_r3.bf": -1,
	} {
		got, ok := sampleFileWindow(name)
		if want < 0 && ok {
			t.Errorf("%s: window %d, want not a sample file name", name, got)
		}
		if want >= 0 && (!ok || got != want) {
			t.Errorf("%s: window %d (%v), want %d", name, got, ok, want)
		}
	}
}
