package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// timeout bounds every store call of the suite.
const timeout = 30 * time.Second

// The suite's windows are 60 s long; w0 is a window start (a multiple of 60).
const (
	winSecs = 60
	w0      = int64(1_700_000_100)
	w1      = w0 + winSecs
	w2      = w1 + winSecs
)

// Run runs every test of the suite against the backend newDSN makes: each test gets a DSN of its own,
// empty store (a SQLite path in t.TempDir, or PostgresDSN).
func Run(t *testing.T, newDSN func(t *testing.T) string) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"SaveBatchesDedup", testSaveBatchesDedup},
		{"SaveBatchesSplitByWindow", testSplitByWindow},
		{"SaveBatchesOnlyDrops", testOnlyDrops},
		{"CountersSaturate", testCountersSaturate},
		{"SeqReplayRule", testSeqReplayRule},
		{"StrictPageTokens", testStrictPageTokens},
		{"EndWindow", testEndWindow},
		{"DueWindowsGrace", testDueWindowsGrace},
		{"DueWindowsLimitAndOrder", testDueWindowsLimit},
		{"LateBatchReopensWindow", testLateBatch},
		{"CloseWindowNotOpen", testCloseNotOpen},
		{"CloseWindowBuildError", testCloseBuildError},
		{"CloseWindowBatchDuringBuild", testBatchDuringBuild},
		{"ListSamplesFilters", testListFilters},
		{"ListSamplesPaging", testListPaging},
		{"SampleNotFound", testNotFound},
		{"SetSampleState", testSetSampleState},
		{"Hosts", testHosts},
		{"HostsPaging", testHostsPaging},
		{"CountOpenWindows", testCountOpen},
		{"ReopenMigrations", testReopen},
		{"ConcurrentCloseOneRevision", testConcurrentClose},
		{"ConcurrentSaveSameBatches", testConcurrentSaveSame},
		{"ConcurrentSaveNoDeadlock", testConcurrentSaveNoDeadlock},
		{"ConcurrentSaveAndClose", testConcurrentSaveAndClose},
		{"PruneSamplesOldGoRecentStay", testPruneSamples},
		{"PruneSamplesBoundary", testPruneSamplesBoundary},
		{"PruneSamplesSkipsClaimedRelay", testPruneSamplesClaimed},
		{"PruneSamplesChunks", testPruneSamplesChunks},
		{"PruneBatches", testPruneBatches},
		{"PruneBatchesChunks", testPruneBatchesChunks},
		{"LateBatchAfterPruneBatches", testLateBatchAfterPrune},
		{"LateBatchAfterPruneSamples", testLateBatchAfterPruneSamples},
		{"ReplayAfterPruneIsDuplicate", testReplayAfterPrune},
		{"ConcurrentPruneAndLateBatches", testConcurrentPruneAndLate},
		{"ConcurrentPruners", testConcurrentPruners},
		{"FailWindowIsolates", testFailWindowIsolates},
		{"WindowLimits", testWindowLimits},
		{"FlowChunks", testFlowChunks},
		{"ContentChecksum", testContentChecksum},
		{"StatsAndWriteProbe", testStatsAndProbe},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, dsn: newDSN(t)}
			e.st = e.open()
			tc.fn(t, e)
		})
	}
	t.Run("ConcurrentOpenMigratesOnce", func(t *testing.T) { testConcurrentOpen(t, newDSN(t)) })
}

// testConcurrentOpen opens one new database from several stores at once, as collectors started
// together do: the migrations run once and every open succeeds.
func testConcurrentOpen(t *testing.T, dsn string) {
	const n = 4
	var wg sync.WaitGroup
	stores := make([]store.Store, n)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := store.Open(ctx(t), dsn)
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			stores[i] = st
		}()
	}
	wg.Wait()
	for _, st := range stores {
		if st != nil {
			defer st.Close()
		}
	}
	if t.Failed() {
		return
	}
	save(t, stores[0], batch("h", "s", 1, at(0), 1, w0))
	if dup := save(t, stores[n-1], batch("h", "s", 1, at(0), 1, w0)); !dup[0] {
		t.Fatal("stores opened together do not share one database")
	}
}

type env struct {
	t   *testing.T
	dsn string
	st  store.Store
}

func (e *env) open() store.Store {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := store.Open(ctx, e.dsn)
	if err != nil {
		e.t.Fatalf("open %s: %v", e.dsn, err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return c
}

// payload is the stand-in for a batch part's encoded flows: the store keeps it opaque.
func payload(host, stream string, seq uint64, ws int64) []byte {
	return fmt.Appendf(nil, "%s/%s/%d/%d", host, stream, seq, ws)
}

// batch makes a batch of stream on host, with one part of flows flows in each window of wss.
func batch(host, stream string, seq uint64, at time.Time, flows int, wss ...int64) store.Batch {
	b := store.Batch{Host: host, StreamID: stream, Seq: seq, Received: at}
	for _, ws := range wss {
		b.Parts = append(b.Parts, store.BatchPart{WindowStart: ws, WindowSeconds: winSecs, FlowCount: flows,
			Flows: payload(host, stream, seq, ws)})
	}
	return b
}

func ref(host string, ws int64) store.WindowRef {
	return store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: winSecs}
}

// at is a time relative to the end of window w0.
func at(afterEnd time.Duration) time.Time {
	return time.Unix(w0+winSecs, 0).Add(afterEnd)
}

func sampleID(host string, ws int64, rev int) string {
	id := fmt.Sprintf("%s_%d", host, ws)
	if rev > 1 {
		id += fmt.Sprintf("_r%d", rev)
	}
	return id
}

// build is a CloseWindow callback that records what it was given and makes a sample whose flows are
// the window's batches joined by '|'.
func build(got *store.WindowContent) func(store.WindowContent) (store.NewSample, error) {
	return func(c store.WindowContent) (store.NewSample, error) {
		if got != nil {
			*got = c
		}
		id := sampleID(c.Host, c.WindowStart, c.Revision)
		return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: len(c.Batches), Bytes: int64(10 * len(c.Batches)),
			State: store.StateWritten, Content: []byte("content of " + id), Flows: bytes.Join(c.Batches, []byte("|"))}, nil
	}
}

// save stores batches that are each new or a duplicate, and reports the duplicates.
func save(t *testing.T, st store.Store, batches ...store.Batch) []bool {
	t.Helper()
	out := saveOutcomes(t, st, batches...)
	dup := make([]bool, len(out))
	for i, o := range out {
		if o == store.OutOfOrder {
			t.Fatalf("batch %d (seq %d) refused as out of order", i, batches[i].Seq)
		}
		dup[i] = o == store.Duplicate
	}
	return dup
}

// saveOutcomes stores batches and returns what SaveBatches did with each.
func saveOutcomes(t *testing.T, st store.Store, batches ...store.Batch) []store.Outcome {
	t.Helper()
	out, err := st.SaveBatches(ctx(t), batches)
	if err != nil {
		t.Fatalf("SaveBatches: %v", err)
	}
	if len(out) != len(batches) {
		t.Fatalf("SaveBatches returned %d outcomes for %d batches", len(out), len(batches))
	}
	return out
}

func closeWindow(t *testing.T, st store.Store, w store.WindowRef) (*store.Sample, store.WindowContent) {
	t.Helper()
	var got store.WindowContent
	s, err := st.CloseWindow(ctx(t), w, build(&got))
	if err != nil {
		t.Fatalf("CloseWindow %s/%d: %v", w.Host, w.WindowStart, err)
	}
	return s, got
}

func batchesAsStrings(c store.WindowContent) []string {
	var out []string
	for _, b := range c.Batches {
		out = append(out, string(b))
	}
	return out
}

func due(t *testing.T, st store.Store, now time.Time, grace time.Duration) []store.WindowRef {
	t.Helper()
	d, err := st.DueWindows(ctx(t), now, grace, 100)
	if err != nil {
		t.Fatalf("DueWindows: %v", err)
	}
	return d
}

// allHosts lists every host, following the page tokens.
func allHosts(t *testing.T, st store.Store, f store.HostFilter) []store.Host {
	t.Helper()
	var all []store.Host
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListHosts paging does not end")
		}
		hosts, next, err := st.ListHosts(ctx(t), f)
		if err != nil {
			t.Fatalf("ListHosts %+v: %v", f, err)
		}
		all = append(all, hosts...)
		if next == "" {
			return all
		}
		f.PageToken = next
	}
}

func host(t *testing.T, st store.Store, name string) store.Host {
	t.Helper()
	hosts := allHosts(t, st, store.HostFilter{})
	for _, h := range hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("host %s not listed (hosts: %+v)", name, hosts)
	return store.Host{}
}

func contact(t *testing.T, st store.Store, c store.HostContact) {
	t.Helper()
	if err := st.ContactHost(ctx(t), c); err != nil {
		t.Fatalf("ContactHost: %v", err)
	}
}

func testSaveBatchesDedup(t *testing.T, e *env) {
	now := at(0)
	contact(t, e.st, store.HostContact{Name: "h1", StreamID: "s", Connected: true, At: now})
	if got := save(t, e.st, batch("h1", "s", 1, now, 5, w0), batch("h1", "s", 2, now, 7, w0)); slices.Contains(got, true) {
		t.Fatalf("first batches reported as duplicates: %v", got)
	}
	// A replay of 2 with the new 3: 2 is at the mark, 3 above it.
	if got := save(t, e.st, batch("h1", "s", 2, now, 7, w0), batch("h1", "s", 3, now, 1, w0)); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("replay of 2 and new 3: dup %v, want [true false]", got)
	}
	// Below the mark, and a repeat inside one call.
	if got := save(t, e.st, batch("h1", "s", 1, now, 5, w0), batch("h1", "s", 4, now, 1, w0), batch("h1", "s", 4, now, 1, w0)); !slices.Equal(got, []bool{true, false, true}) {
		t.Fatalf("1, 4, 4: dup %v, want [true false true]", got)
	}
	// Another stream of the same host, and the same stream id on another host, count from scratch.
	if got := save(t, e.st, batch("h1", "other", 1, now, 2, w0), batch("h2", "s", 1, now, 3, w0)); slices.Contains(got, true) {
		t.Fatalf("new streams reported as duplicates: %v", got)
	}
	if h := host(t, e.st, "h1"); h.FlowsReceived != 5+7+1+1+2 {
		t.Fatalf("h1 flows received %d, want %d (duplicates not counted)", h.FlowsReceived, 5+7+1+1+2)
	}
	if err := e.st.EndWindow(ctx(t), ref("h1", w0), 0); err != nil {
		t.Fatal(err)
	}
	s, c := closeWindow(t, e.st, ref("h1", w0))
	want := []string{"h1/s/1/" + itoa(w0), "h1/s/2/" + itoa(w0), "h1/s/3/" + itoa(w0), "h1/s/4/" + itoa(w0), "h1/other/1/" + itoa(w0)}
	if got := batchesAsStrings(c); !slices.Equal(got, want) {
		t.Fatalf("window batches %q, want %q (each batch once, in arrival order)", got, want)
	}
	if s == nil || s.Revision != 1 || s.Host != "h1" || s.WindowStart != w0 || s.WindowSeconds != winSecs {
		t.Fatalf("sample %+v", s)
	}
}

func itoa(v int64) string { return fmt.Sprint(v) }

func testSplitByWindow(t *testing.T, e *env) {
	now := at(0)
	contact(t, e.st, store.HostContact{Name: "h1", StreamID: "s", Connected: true, At: now})
	save(t, e.st, batch("h1", "s", 1, now, 4, w0, w1), batch("h1", "s", 2, now, 1, w1))
	if n, err := e.st.CountOpenWindows(ctx(t)); err != nil || n != 2 {
		t.Fatalf("open windows %d (%v), want 2", n, err)
	}
	for _, w := range []int64{w0, w1} {
		if err := e.st.EndWindow(ctx(t), ref("h1", w), 0); err != nil {
			t.Fatal(err)
		}
	}
	_, c0 := closeWindow(t, e.st, ref("h1", w0))
	_, c1 := closeWindow(t, e.st, ref("h1", w1))
	if got, want := batchesAsStrings(c0), []string{"h1/s/1/" + itoa(w0)}; !slices.Equal(got, want) {
		t.Fatalf("window %d got %q, want %q", w0, got, want)
	}
	if got, want := batchesAsStrings(c1), []string{"h1/s/1/" + itoa(w1), "h1/s/2/" + itoa(w1)}; !slices.Equal(got, want) {
		t.Fatalf("window %d got %q, want %q", w1, got, want)
	}
	if h := host(t, e.st, "h1"); h.FlowsReceived != 4+4+1 {
		t.Fatalf("flows received %d, want 9", h.FlowsReceived)
	}
}

func testOnlyDrops(t *testing.T, e *env) {
	now := at(0)
	contact(t, e.st, store.HostContact{Name: "h1", StreamID: "s", Connected: true, At: now})
	b := store.Batch{Host: "h1", StreamID: "s", Seq: 1, Drops: 17, Received: now}
	save(t, e.st, b)
	if dup := save(t, e.st, b); !dup[0] {
		t.Fatal("a replayed drops-only batch was not recognised")
	}
	if h := host(t, e.st, "h1"); h.DropsReported != 17 || h.FlowsReceived != 0 {
		t.Fatalf("host %+v, want 17 drops counted once and no flows", h)
	}
	if n, _ := e.st.CountOpenWindows(ctx(t)); n != 0 {
		t.Fatalf("a batch without flows opened %d windows", n)
	}
}

func testEndWindow(t *testing.T, e *env) {
	now := at(-30 * time.Second) // inside the window
	save(t, e.st, batch("h1", "s", 1, now, 1, w0), batch("h2", "s", 1, now, 1, w0))
	if d := due(t, e.st, now, time.Minute); len(d) != 0 {
		t.Fatalf("due before the window ended: %+v", d)
	}
	// An end mark for a window that holds nothing is not an error and opens nothing.
	if err := e.st.EndWindow(ctx(t), ref("h1", w2), 1); err != nil {
		t.Fatalf("EndWindow of an unknown window: %v", err)
	}
	if err := e.st.EndWindow(ctx(t), ref("h1", w0), float64(w0)+0.25); err != nil {
		t.Fatal(err)
	}
	// A later mark without a frame time keeps the first one.
	if err := e.st.EndWindow(ctx(t), ref("h1", w0), 0); err != nil {
		t.Fatal(err)
	}
	d := due(t, e.st, now, time.Minute)
	if len(d) != 1 || d[0] != ref("h1", w0) {
		t.Fatalf("due after the end mark: %+v, want only h1/%d", d, w0)
	}
	s, c := closeWindow(t, e.st, d[0])
	if s == nil || c.FirstFrameTime != float64(w0)+0.25 || c.Revision != 1 || c.WindowRef != ref("h1", w0) {
		t.Fatalf("closed %+v with content %+v, want revision 1 and first frame time %v", s, c, float64(w0)+0.25)
	}
	if err := e.st.EndWindow(ctx(t), ref("h1", w0), 0); err != nil {
		t.Fatalf("EndWindow of a closed window: %v", err)
	}
	if d := due(t, e.st, now, time.Minute); len(d) != 0 {
		t.Fatalf("an end mark on a closed window made it due: %+v", d)
	}
}

func testDueWindowsGrace(t *testing.T, e *env) {
	grace := 10 * time.Second
	save(t, e.st, batch("h1", "s", 1, at(-5*time.Second), 1, w0))
	if d := due(t, e.st, at(grace-time.Millisecond), grace); len(d) != 0 {
		t.Fatalf("due before end + grace: %+v", d)
	}
	if d := due(t, e.st, at(grace), grace); len(d) != 1 {
		t.Fatalf("not due at end + grace: %+v", d)
	}
	// A batch arriving after the end pushes the close to its arrival + grace.
	save(t, e.st, batch("h1", "s", 2, at(8*time.Second), 1, w0))
	if d := due(t, e.st, at(grace), grace); len(d) != 0 {
		t.Fatalf("due less than grace after the last batch: %+v", d)
	}
	if d := due(t, e.st, at(8*time.Second+grace), grace); len(d) != 1 || d[0] != ref("h1", w0) {
		t.Fatalf("not due at last batch + grace: %+v", d)
	}
}

func testDueWindowsLimit(t *testing.T, e *env) {
	now := at(-time.Second)
	var bs []store.Batch
	for i, h := range []string{"c", "a", "b"} {
		bs = append(bs, batch(h, "s", 1, now, 1, w1, w0))
		_ = i
	}
	save(t, e.st, bs...)
	d, err := e.st.DueWindows(ctx(t), at(time.Hour), time.Minute, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.WindowRef{ref("a", w0), ref("b", w0), ref("c", w0), ref("a", w1)}
	if !slices.Equal(d, want) {
		t.Fatalf("due %+v, want %+v (oldest window first, then host, at most the limit)", d, want)
	}
}

func testLateBatch(t *testing.T, e *env) {
	grace := 10 * time.Second
	save(t, e.st, batch("h1", "s", 1, at(-time.Second), 3, w0))
	if err := e.st.EndWindow(ctx(t), ref("h1", w0), float64(w0)+1); err != nil {
		t.Fatal(err)
	}
	s1, _ := closeWindow(t, e.st, ref("h1", w0))
	if s1 == nil || s1.ID != sampleID("h1", w0, 1) {
		t.Fatalf("first close: %+v", s1)
	}
	if n, _ := e.st.CountOpenWindows(ctx(t)); n != 0 {
		t.Fatalf("%d windows open after the close", n)
	}
	// A late batch reopens the window without its old end mark: it is due grace after the batch.
	late := at(20 * time.Second)
	save(t, e.st, batch("h1", "s", 2, late, 1, w0))
	if n, _ := e.st.CountOpenWindows(ctx(t)); n != 1 {
		t.Fatalf("late batch: %d windows open, want 1", n)
	}
	if d := due(t, e.st, late, grace); len(d) != 0 {
		t.Fatalf("reopened window due at once: %+v (the old end mark must not carry over)", d)
	}
	if d := due(t, e.st, late.Add(grace), grace); len(d) != 1 {
		t.Fatalf("reopened window not due at late batch + grace: %+v", d)
	}
	s2, c := closeWindow(t, e.st, ref("h1", w0))
	if s2 == nil || s2.Revision != 2 || s2.ID != sampleID("h1", w0, 2) {
		t.Fatalf("second close: %+v", s2)
	}
	if got, want := batchesAsStrings(c), []string{"h1/s/1/" + itoa(w0), "h1/s/2/" + itoa(w0)}; !slices.Equal(got, want) {
		t.Fatalf("revision 2 holds %q, want the whole window %q", got, want)
	}
	if c.FirstFrameTime != float64(w0)+1 {
		t.Fatalf("revision 2 first frame time %v, want the window's %v", c.FirstFrameTime, float64(w0)+1)
	}
	// Both revisions stay listed.
	all, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{Host: "h1"})
	if err != nil || len(all) != 2 {
		t.Fatalf("samples %+v (%v), want two revisions", all, err)
	}
}

func testCloseNotOpen(t *testing.T, e *env) {
	// Never opened.
	if s, err := e.st.CloseWindow(ctx(t), ref("nobody", w0), build(nil)); s != nil || err != nil {
		t.Fatalf("closing an unknown window: %+v, %v; want nil, nil", s, err)
	}
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0))
	closeWindow(t, e.st, ref("h1", w0))
	called := false
	s, err := e.st.CloseWindow(ctx(t), ref("h1", w0), func(c store.WindowContent) (store.NewSample, error) {
		called = true
		return build(nil)(c)
	})
	if s != nil || err != nil || called {
		t.Fatalf("closing a closed window: %+v, %v, build called %v; want nil, nil, not called", s, err, called)
	}
}

func testCloseBuildError(t *testing.T, e *env) {
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0))
	boom := errors.New("disk full")
	s, err := e.st.CloseWindow(ctx(t), ref("h1", w0), func(store.WindowContent) (store.NewSample, error) {
		return store.NewSample{}, boom
	})
	if s != nil || !errors.Is(err, boom) {
		t.Fatalf("failed build: %+v, %v; want the build's error", s, err)
	}
	if n, _ := e.st.CountOpenWindows(ctx(t)); n != 1 {
		t.Fatalf("window not open after a failed build (%d open)", n)
	}
	if s, _ := closeWindow(t, e.st, ref("h1", w0)); s == nil || s.Revision != 1 {
		t.Fatalf("retry after a failed build: %+v, want revision 1", s)
	}
}

// testBatchDuringBuild saves a batch into the window while its sample is being built. A batch stored
// before CloseWindow returns must be in the sample it returns (SQLite builds from a snapshot and must
// notice); one that waits for the close (PostgreSQL's row lock) reopens the window for a new revision.
func testBatchDuringBuild(t *testing.T, e *env) {
	other := e.open()
	save(t, e.st, batch("h", "s", 1, at(0), 1, w0))
	saved := make(chan error, 1)
	first, storedDuringBuild := true, false
	s, err := e.st.CloseWindow(ctx(t), ref("h", w0), func(c store.WindowContent) (store.NewSample, error) {
		if first {
			first = false
			go func() {
				_, err := other.SaveBatches(ctx(t), []store.Batch{batch("h", "s", 2, at(time.Second), 1, w0)})
				saved <- err
			}()
			select {
			case err := <-saved:
				if err != nil {
					return store.NewSample{}, err
				}
				storedDuringBuild = true
			case <-time.After(time.Second): // PostgreSQL: the save waits for the window's row lock
			}
		}
		return build(nil)(c)
	})
	if err != nil || s == nil {
		t.Fatalf("close: %+v, %v", s, err)
	}
	if storedDuringBuild {
		if s.FlowCount != 2 || s.Revision != 1 {
			t.Fatalf("a batch stored during the build is missing from the sample: %+v", s)
		}
		return
	}
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	s2, _ := closeWindow(t, e.st, ref("h", w0))
	if s2 == nil || s2.Revision != 2 || s2.FlowCount != 2 {
		t.Fatalf("after a batch that waited for the close: %+v, want revision 2 with both batches", s2)
	}
}

// makeSamples closes one window per host × window start and returns their ids.
func makeSamples(t *testing.T, st store.Store, hosts []string, starts []int64) []string {
	t.Helper()
	var ids []string
	seq := map[string]uint64{}
	for _, ws := range starts {
		for _, h := range hosts {
			seq[h]++
			save(t, st, batch(h, "s", seq[h], time.Unix(ws, 0), 1, ws))
			s, _ := closeWindow(t, st, ref(h, ws))
			if s == nil {
				t.Fatalf("no sample for %s/%d", h, ws)
			}
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func ids(samples []store.Sample) []string {
	var out []string
	for _, s := range samples {
		out = append(out, s.ID)
	}
	return out
}

func testListFilters(t *testing.T, e *env) {
	makeSamples(t, e.st, []string{"a", "b"}, []int64{w0, w1, w2})
	if _, err := e.st.SetSampleState(ctx(t), sampleID("b", w1, 1), store.StateRelayed, "uuid-1", ""); err != nil {
		t.Fatal(err)
	}
	list := func(f store.SampleFilter) []string {
		t.Helper()
		s, next, err := e.st.ListSamples(ctx(t), f)
		if err != nil {
			t.Fatalf("ListSamples %+v: %v", f, err)
		}
		if next != "" {
			t.Fatalf("ListSamples %+v: next page token %q on the last page", f, next)
		}
		return ids(s)
	}
	cases := []struct {
		f    store.SampleFilter
		want []string
	}{
		{store.SampleFilter{}, []string{"b_" + itoa(w2), "a_" + itoa(w2), "b_" + itoa(w1), "a_" + itoa(w1), "b_" + itoa(w0), "a_" + itoa(w0)}},
		{store.SampleFilter{Host: "a"}, []string{"a_" + itoa(w2), "a_" + itoa(w1), "a_" + itoa(w0)}},
		{store.SampleFilter{Since: time.Unix(w1, 0)}, []string{"b_" + itoa(w2), "a_" + itoa(w2), "b_" + itoa(w1), "a_" + itoa(w1)}},
		{store.SampleFilter{Until: time.Unix(w1, 0)}, []string{"b_" + itoa(w0), "a_" + itoa(w0)}},
		{store.SampleFilter{Host: "b", Since: time.Unix(w1, 0), Until: time.Unix(w2, 0)}, []string{"b_" + itoa(w1)}},
		{store.SampleFilter{State: store.StateRelayed}, []string{"b_" + itoa(w1)}},
		{store.SampleFilter{State: store.StateWritten, Host: "b"}, []string{"b_" + itoa(w2), "b_" + itoa(w0)}},
		{store.SampleFilter{Host: "nobody"}, nil},
	}
	for _, c := range cases {
		if got := list(c.f); !slices.Equal(got, c.want) {
			t.Errorf("ListSamples %+v = %q, want %q", c.f, got, c.want)
		}
	}
}

func testListPaging(t *testing.T, e *env) {
	var starts []int64
	for i := int64(0); i < 7; i++ {
		starts = append(starts, w0+i*winSecs)
	}
	all := makeSamples(t, e.st, []string{"a", "b", "c"}, starts) // 21 samples
	// Newest first: window start descending, then id descending.
	want := slices.Clone(all)
	slices.SortFunc(want, func(x, y string) int {
		xs, ys := x[strings.IndexByte(x, '_')+1:], y[strings.IndexByte(y, '_')+1:]
		if c := strings.Compare(ys, xs); c != 0 {
			return c
		}
		return strings.Compare(y, x)
	})
	for _, size := range []int{1, 4, 20, 21, 50} {
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatalf("page size %d: paging does not end", size)
			}
			page, next, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageSize: size, PageToken: token})
			if err != nil {
				t.Fatalf("page size %d: %v", size, err)
			}
			if len(page) > size {
				t.Fatalf("page size %d: page of %d", size, len(page))
			}
			got = append(got, ids(page)...)
			if next == "" {
				break
			}
			token = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("page size %d: %q, want %q", size, got, want)
		}
	}
	// Paging with a filter keeps the filter.
	page, next, err := e.st.ListSamples(ctx(t), store.SampleFilter{Host: "b", PageSize: 5})
	if err != nil || len(page) != 5 || next == "" {
		t.Fatalf("filtered first page: %d samples, next %q, %v", len(page), next, err)
	}
	page2, next2, err := e.st.ListSamples(ctx(t), store.SampleFilter{Host: "b", PageSize: 5, PageToken: next})
	if err != nil || len(page2) != 2 || next2 != "" {
		t.Fatalf("filtered second page: %d samples, next %q, %v", len(page2), next2, err)
	}
	for _, s := range append(page, page2...) {
		if s.Host != "b" {
			t.Fatalf("filtered page holds %s", s.ID)
		}
	}
	// The default page is 50, and a page is never larger than MaxPageSize.
	if page, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageSize: store.MaxPageSize * 10}); err != nil || len(page) != 21 {
		t.Fatalf("huge page size: %d samples, %v", len(page), err)
	}
	for _, bad := range []string{"!!!", "bm90LWEtdG9rZW4", "Zm9vOmJhcg"} { // not base64; "not-a-token"; "foo:bar"
		if _, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageToken: bad}); !errors.Is(err, store.ErrBadToken) {
			t.Errorf("page token %q: %v, want ErrBadToken", bad, err)
		}
	}
}

func testNotFound(t *testing.T, e *env) {
	c := ctx(t)
	if _, err := e.st.GetSample(c, "nope_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSample: %v, want ErrNotFound", err)
	}
	if _, err := e.st.SampleContent(c, "nope_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SampleContent: %v, want ErrNotFound", err)
	}
	if _, err := e.st.SampleFlows(c, "nope_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SampleFlows: %v, want ErrNotFound", err)
	}
	if _, err := e.st.SetSampleState(c, "nope_1", store.StateRelayed, "x", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetSampleState: %v, want ErrNotFound", err)
	}
	// And what exists is found, byte for byte.
	save(t, e.st, batch("h1", "s", 1, at(0), 2, w0), batch("h1", "s", 2, at(0), 2, w0))
	s, _ := closeWindow(t, e.st, ref("h1", w0))
	got, err := e.st.GetSample(c, s.ID)
	if err != nil || *got != *s {
		t.Fatalf("GetSample = %+v, %v; CloseWindow returned %+v", got, err, s)
	}
	if s.State != store.StateWritten || s.FlowCount != 2 || s.Bytes != 20 || s.FileName != s.ID+".bf" || s.Created.IsZero() {
		t.Fatalf("sample %+v", s)
	}
	content, err := e.st.SampleContent(c, s.ID)
	if err != nil || string(content) != "content of "+s.ID {
		t.Fatalf("content %q, %v", content, err)
	}
	flows, err := e.st.SampleFlows(c, s.ID)
	if err != nil || string(flows) != "h1/s/1/"+itoa(w0)+"|h1/s/2/"+itoa(w0) {
		t.Fatalf("flows %q, %v", flows, err)
	}
}

func testSetSampleState(t *testing.T, e *env) {
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0))
	s, _ := closeWindow(t, e.st, ref("h1", w0))
	time.Sleep(5 * time.Millisecond)
	got, err := e.st.SetSampleState(ctx(t), s.ID, store.StateRelayFailed, "", "401 bad key")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateRelayFailed || got.RelayError != "401 bad key" || got.RemoteID != "" || !got.Updated.After(s.Updated) || !got.Created.Equal(s.Created) {
		t.Fatalf("after relay failure: %+v (was %+v)", got, s)
	}
	got, err = e.st.SetSampleState(ctx(t), s.ID, store.StateRelayed, "3f2a-uuid", "")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.st.GetSample(ctx(t), s.ID)
	if got.State != store.StateRelayed || got.RemoteID != "3f2a-uuid" || got.RelayError != "" || *again != *got {
		t.Fatalf("after relay: %+v, stored %+v", got, again)
	}
}

func testHosts(t *testing.T, e *env) {
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	contact(t, e.st, store.HostContact{Name: "web", StreamID: "s1", SoftwareVersion: "v1", WindowSeconds: 300,
		Connected: true, Collector: "c1", At: t0})
	contact(t, e.st, store.HostContact{Name: "db", StreamID: "s9", SoftwareVersion: "v1", WindowSeconds: 300,
		Connected: true, Collector: "c2", Drops: 4, At: t0})
	save(t, e.st, store.Batch{Host: "web", StreamID: "s1", Seq: 1, Drops: 3, Received: t0.Add(time.Second),
		Parts: []store.BatchPart{{WindowStart: w0, WindowSeconds: winSecs, FlowCount: 10, Flows: []byte("x")}}})
	// A goodbye carries only the name: everything else is kept.
	contact(t, e.st, store.HostContact{Name: "web", Connected: false, Collector: "c1", Drops: 2, At: t0.Add(time.Minute)})
	hosts, next, err := e.st.ListHosts(ctx(t), store.HostFilter{})
	if err != nil || next != "" {
		t.Fatalf("ListHosts: next %q, %v", next, err)
	}
	want := []store.Host{
		{Name: "db", StreamID: "s9", SoftwareVersion: "v1", WindowSeconds: 300, FirstContact: t0, LastContact: t0,
			Connected: true, Collector: "c2", DropsReported: 4},
		{Name: "web", StreamID: "s1", SoftwareVersion: "v1", WindowSeconds: 300, FirstContact: t0, LastContact: t0.Add(time.Minute),
			Connected: false, Collector: "c1", FlowsReceived: 10, DropsReported: 5},
	}
	if !slices.Equal(hosts, want) {
		t.Fatalf("hosts\n got %+v\nwant %+v", hosts, want)
	}
	// A reconnect elsewhere with a new version and stream.
	contact(t, e.st, store.HostContact{Name: "web", StreamID: "s2", SoftwareVersion: "v2", WindowSeconds: 300,
		Connected: true, Collector: "c2", At: t0.Add(2 * time.Minute)})
	h := host(t, e.st, "web")
	if h.StreamID != "s2" || h.SoftwareVersion != "v2" || !h.Connected || h.Collector != "c2" || !h.FirstContact.Equal(t0) ||
		!h.LastContact.Equal(t0.Add(2*time.Minute)) || h.FlowsReceived != 10 || h.DropsReported != 5 {
		t.Fatalf("after reconnect: %+v", h)
	}
}

func testCountOpen(t *testing.T, e *env) {
	count := func() int {
		t.Helper()
		n, err := e.st.CountOpenWindows(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("empty store: %d open windows", n)
	}
	save(t, e.st, batch("a", "s", 1, at(0), 1, w0, w1), batch("b", "s", 1, at(0), 1, w0))
	if n := count(); n != 3 {
		t.Fatalf("%d open windows, want 3", n)
	}
	closeWindow(t, e.st, ref("a", w0))
	if n := count(); n != 2 {
		t.Fatalf("after a close: %d open windows, want 2", n)
	}
}

func testReopen(t *testing.T, e *env) {
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0))
	s, _ := closeWindow(t, e.st, ref("h1", w0))
	save(t, e.st, batch("h1", "s", 2, at(0), 1, w1))
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // migrations run at every open and change nothing the second time
		st := e.open()
		if err := st.Ping(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if got, err := st.GetSample(ctx(t), s.ID); err != nil || got.ID != s.ID {
			t.Fatalf("reopen %d: sample %+v, %v", i, got, err)
		}
		if n, _ := st.CountOpenWindows(ctx(t)); n != 1 {
			t.Fatalf("reopen %d: %d open windows, want 1", i, n)
		}
		if dup := save(t, st, batch("h1", "s", 2, at(0), 1, w1)); !dup[0] {
			t.Fatalf("reopen %d: the dedup mark was lost", i)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// testConcurrentClose closes the same windows from two stores on one database at once (two collectors):
// each window gets exactly one sample revision, and the loser sees nil, nil.
func testConcurrentClose(t *testing.T, e *env) {
	other := e.open()
	const windows = 6
	for i := 0; i < windows; i++ {
		save(t, e.st, batch("h", "s", uint64(i+1), at(0), 1, w0+int64(i)*winSecs))
	}
	var mu sync.Mutex
	closed := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*windows)
	for _, st := range []store.Store{e.st, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < windows; i++ {
				w := ref("h", w0+int64(i)*winSecs)
				s, err := st.CloseWindow(ctx(t), w, func(c store.WindowContent) (store.NewSample, error) {
					time.Sleep(50 * time.Millisecond) // hold the window while the other store tries
					return build(nil)(c)
				})
				if err != nil {
					errs <- err
					continue
				}
				if s != nil {
					mu.Lock()
					closed[w.WindowStart]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("CloseWindow: %v", err)
	}
	for i := 0; i < windows; i++ {
		if n := closed[w0+int64(i)*winSecs]; n != 1 {
			t.Errorf("window %d closed %d times, want once", i, n)
		}
	}
	all, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{})
	if err != nil || len(all) != windows {
		t.Fatalf("%d samples (%v), want %d", len(all), err, windows)
	}
	for _, s := range all {
		if s.Revision != 1 {
			t.Errorf("sample %s has revision %d", s.ID, s.Revision)
		}
	}
}

// testConcurrentSaveSame saves the same batches from two stores at once, as happens when a sensor
// fails over while its old collector still commits: each batch is stored exactly once.
func testConcurrentSaveSame(t *testing.T, e *env) {
	other := e.open()
	const n = 100
	dups := make([][]bool, 2)
	for seq := uint64(1); seq <= n; seq += 2 {
		// Both stores commit the same pair at once, round after round.
		var wg sync.WaitGroup
		for k, st := range []store.Store{e.st, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := st.SaveBatches(ctx(t), []store.Batch{batch("h", "s", seq, at(0), 1, w0), batch("h", "s", seq+1, at(0), 1, w0)})
				d := make([]bool, 2)
				if err != nil {
					t.Errorf("SaveBatches: %v", err)
				}
				for i := range out {
					if out[i] == store.OutOfOrder {
						t.Errorf("seq %d refused as out of order", seq+uint64(i))
					}
					d[i] = out[i] == store.Duplicate
				}
				dups[k] = append(dups[k], d...)
			}()
		}
		wg.Wait()
	}
	if t.Failed() {
		return
	}
	for i := 0; i < n; i++ {
		if dups[0][i] == dups[1][i] {
			t.Errorf("batch %d: duplicate flags %v and %v, want exactly one store to keep it", i+1, dups[0][i], dups[1][i])
		}
	}
	_, c := closeWindow(t, e.st, ref("h", w0))
	if len(c.Batches) != n {
		t.Fatalf("window holds %d batches, want %d", len(c.Batches), n)
	}
	seen := map[string]bool{}
	for _, b := range c.Batches {
		if seen[string(b)] {
			t.Fatalf("batch %s stored twice", b)
		}
		seen[string(b)] = true
	}
}

// testConcurrentSaveNoDeadlock commits groups that hold the same hosts in opposite orders from two
// stores: neither may fail (PostgreSQL would report a deadlock if rows were locked in group order).
func testConcurrentSaveNoDeadlock(t *testing.T, e *env) {
	other := e.open()
	hosts := []string{"a", "b", "c", "d", "e", "f"}
	for _, h := range hosts {
		contact(t, e.st, store.HostContact{Name: h, Connected: true, At: at(0)})
	}
	var wg sync.WaitGroup
	for k, st := range []store.Store{e.st, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := slices.Clone(hosts)
			if k == 1 {
				slices.Reverse(order)
			}
			stream := fmt.Sprintf("s%d", k)
			for seq := uint64(1); seq <= 30; seq++ {
				var group []store.Batch
				for _, h := range order {
					group = append(group, batch(h, stream, seq, at(0), 1, w1, w0))
				}
				if _, err := st.SaveBatches(ctx(t), group); err != nil {
					t.Errorf("store %d, seq %d: %v", k, seq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if h := host(t, e.st, "a"); !t.Failed() && h.FlowsReceived != 2*30*2 {
		t.Fatalf("host a received %d flows, want %d", h.FlowsReceived, 2*30*2)
	}
}

// testConcurrentSaveAndClose keeps saving batches into a window while another store closes it again
// and again: every batch ends up in the window's last revision, and revisions are consecutive.
func testConcurrentSaveAndClose(t *testing.T, e *env) {
	other := e.open()
	const n = 60
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(1); seq <= n; seq++ {
			if _, err := e.st.SaveBatches(ctx(t), []store.Batch{batch("h", "s", seq, at(0), 1, w0)}); err != nil {
				t.Errorf("SaveBatches: %v", err)
				return
			}
		}
	}()
	revs := 0
	closeOnce := func() {
		s, err := other.CloseWindow(ctx(t), ref("h", w0), build(nil))
		if err != nil {
			t.Errorf("CloseWindow: %v", err)
			return
		}
		if s != nil {
			revs++
			if s.Revision != revs {
				t.Errorf("revision %d after %d closes", s.Revision, revs-1)
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			closeOnce()
			time.Sleep(time.Millisecond)
		}
	}
	closeOnce()
	last, err := e.st.GetSample(ctx(t), sampleID("h", w0, revs))
	if err != nil {
		t.Fatalf("last revision %d: %v", revs, err)
	}
	flows, _ := e.st.SampleFlows(ctx(t), last.ID)
	if got := len(bytes.Split(flows, []byte("|"))); got != n {
		t.Fatalf("last revision (%d) holds %d batches, want %d", revs, got, n)
	}
	if n, _ := e.st.CountOpenWindows(ctx(t)); n != 0 {
		t.Fatalf("%d windows open after the last close", n)
	}
}
