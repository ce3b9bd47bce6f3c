package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// endOf is the end of the window starting at ws.
func endOf(ws int64) time.Time { return time.Unix(ws+winSecs, 0) }

// closeRelayed closes a window with its sample queued for the relay.
func closeRelayed(t *testing.T, st store.Store, w store.WindowRef) *store.Sample {
	t.Helper()
	s, err := st.CloseWindow(ctx(t), w, func(c store.WindowContent) (store.NewSample, error) {
		ns, err := build(nil)(c)
		ns.Relay = true
		return ns, err
	})
	if err != nil || s == nil {
		t.Fatalf("CloseWindow %s/%d: %+v, %v", w.Host, w.WindowStart, s, err)
	}
	return s
}

func pruneSamples(t *testing.T, st store.Store, r store.PruneRequest) store.PruneResult {
	t.Helper()
	res, err := st.PruneSamples(ctx(t), r)
	if err != nil {
		t.Fatalf("PruneSamples %+v: %v", r, err)
	}
	return res
}

func pruneBatches(t *testing.T, st store.Store, r store.PruneRequest) store.PruneResult {
	t.Helper()
	res, err := st.PruneBatches(ctx(t), r)
	if err != nil {
		t.Fatalf("PruneBatches %+v: %v", r, err)
	}
	return res
}

func prunedIDs(res store.PruneResult) []string {
	var out []string
	for _, x := range res.Samples {
		out = append(out, x.ID)
	}
	sort.Strings(out)
	return out
}

func exists(t *testing.T, st store.Store, id string) bool {
	t.Helper()
	_, err := st.GetSample(ctx(t), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSample %s: %v", id, err)
	}
	return err == nil
}

func openWindows(t *testing.T, st store.Store) int {
	t.Helper()
	n, err := st.CountOpenWindows(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testPruneSamples: windows that ended before the cutoff lose everything (every revision of their
// samples, content, flows, relay entries, batches, the window rows); later windows and open windows stay.
func testPruneSamples(t *testing.T, e *env) {
	for i, ws := range []int64{w0, w1, w2} {
		save(t, e.st, batch("a", "s", uint64(i+1), at(0), 2, ws), batch("b", "s", uint64(i+1), at(0), 3, ws))
		closeRelayed(t, e.st, ref("a", ws))
		closeRelayed(t, e.st, ref("b", ws))
	}
	save(t, e.st, batch("a", "s", 4, at(time.Minute), 1, w0)) // a late batch: a second revision of a/w0
	if s := closeRelayed(t, e.st, ref("a", w0)); s.Revision != 2 {
		t.Fatalf("late batch made revision %d", s.Revision)
	}
	save(t, e.st, batch("c", "s", 1, at(0), 1, w0)) // c/w0 stays open
	hostA := host(t, e.st, "a")

	res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w1), Now: time.Now()})
	want := []string{sampleID("a", w0, 1), sampleID("a", w0, 2), sampleID("a", w1, 1), sampleID("b", w0, 1), sampleID("b", w1, 1)}
	sort.Strings(want)
	if got := prunedIDs(res); !slices.Equal(got, want) {
		t.Fatalf("pruned samples %q, want %q", got, want)
	}
	if res.Windows != 4 || res.Batches != 5 || res.Unrelayed != 5 {
		t.Fatalf("pruned %+v, want 4 windows, 5 batches, 5 samples still queued for the relay", res)
	}
	for _, x := range res.Samples {
		if x.FileName != x.ID+".bf" || (x.Host != "a" && x.Host != "b") || (x.WindowStart != w0 && x.WindowStart != w1) {
			t.Errorf("pruned sample %+v", x)
		}
	}
	for _, id := range want {
		if exists(t, e.st, id) {
			t.Errorf("%s still listed", id)
		}
		if _, err := e.st.SampleContent(ctx(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s content: %v, want ErrNotFound", id, err)
		}
		if _, err := e.st.SampleFlows(ctx(t), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s flows: %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range []string{sampleID("a", w2, 1), sampleID("b", w2, 1)} {
		if !exists(t, e.st, id) {
			t.Errorf("%s (after the cutoff) was pruned", id)
		}
	}
	if all, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{}); err != nil || len(all) != 2 {
		t.Errorf("%d samples listed after pruning (%v), want 2", len(all), err)
	}
	if st, err := e.st.OutboxStats(ctx(t)); err != nil || st.Queued != 2 {
		t.Errorf("relay queue after pruning: %+v, %v; want the 2 recent samples", st, err)
	}
	if n := openWindows(t, e.st); n != 1 {
		t.Errorf("%d open windows, want c/w0 still open", n)
	}
	if h := host(t, e.st, "a"); h != hostA {
		t.Errorf("host changed by pruning: %+v, was %+v", h, hostA)
	}
	if again := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w1), Now: time.Now()}); again.Windows != 0 || len(again.Samples) != 0 {
		t.Errorf("a second prune deleted %+v", again)
	}
	rs, err := e.st.RetentionStats(ctx(t))
	if err != nil || !rs.OldestSample.Equal(time.Unix(w2, 0)) {
		t.Errorf("retention stats %+v, %v; oldest sample want %d", rs, err, w2)
	}
	// c/w0 goes once it is closed.
	closeWindow(t, e.st, ref("c", w0))
	if res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w1), Now: time.Now()}); !slices.Equal(prunedIDs(res), []string{sampleID("c", w0, 1)}) {
		t.Errorf("after c/w0 closed: pruned %q", prunedIDs(res))
	}
}

// testPruneSamplesBoundary: a window goes once its end is at or before the cutoff.
func testPruneSamplesBoundary(t *testing.T, e *env) {
	save(t, e.st, batch("h", "s", 1, at(0), 1, w0))
	closeWindow(t, e.st, ref("h", w0))
	if res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0).Add(-time.Millisecond), Now: time.Now()}); res.Windows != 0 || len(res.Samples) != 0 {
		t.Fatalf("pruned a window that ended after the cutoff: %+v", res)
	}
	if res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0), Now: time.Now()}); res.Windows != 1 || len(res.Samples) != 1 {
		t.Fatalf("a window that ended at the cutoff: %+v, want it pruned", res)
	}
}

// testPruneSamplesClaimed: a sample a relay worker is uploading is not deleted under it; it goes once
// the claim ends.
func testPruneSamplesClaimed(t *testing.T, e *env) {
	save(t, e.st, batch("h", "s", 1, at(0), 1, w0, w1))
	closeRelayed(t, e.st, ref("h", w0))
	closeRelayed(t, e.st, ref("h", w1))
	now := time.Now().Add(time.Second)
	claimed, err := e.st.ClaimOutbox(ctx(t), "worker", now, time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %+v, %v", claimed, err)
	}
	res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w2), Now: now})
	if res.Windows != 1 || len(res.Samples) != 1 || res.Samples[0].ID == claimed[0].SampleID || res.Unrelayed != 1 {
		t.Fatalf("pruned %+v while %s was claimed; want only the other sample", res, claimed[0].SampleID)
	}
	res = pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w2), Now: now.Add(2 * time.Minute)})
	if got := prunedIDs(res); !slices.Equal(got, []string{claimed[0].SampleID}) {
		t.Fatalf("after the claim ran out: pruned %q, want %s", got, claimed[0].SampleID)
	}
}

// testPruneSamplesChunks: a backlog larger than a chunk goes in several bounded calls.
func testPruneSamplesChunks(t *testing.T, e *env) {
	// Ten windows of one flow, three windows a call.
	for i := int64(0); i < 10; i++ {
		ws := w0 + i*winSecs
		save(t, e.st, batch("h", "s", uint64(i+1), at(0), 1, ws))
		closeWindow(t, e.st, ref("h", ws))
	}
	var calls []int
	var ids []string
	for len(calls) < 20 {
		res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0 + 9*winSecs), Now: time.Now(), MaxWindows: 3})
		calls = append(calls, res.Windows)
		ids = append(ids, prunedIDs(res)...)
		if res.Windows == 0 {
			break
		}
	}
	if !slices.Equal(calls, []int{3, 3, 3, 1, 0}) || len(ids) != 10 {
		t.Fatalf("windows a call %v, %d samples; want [3 3 3 1 0] and 10", calls, len(ids))
	}
	// Windows of 5, 5, 5, 50 and 5 flows with at most 12 flows a call: a window is never split.
	base := w0 + 100*winSecs
	for i, flows := range []int{5, 5, 5, 50, 5} {
		ws := base + int64(i)*winSecs
		save(t, e.st, batch("f", "s", uint64(i+1), at(0), flows, ws))
		closeWindow(t, e.st, ref("f", ws))
	}
	calls = nil
	for len(calls) < 20 {
		res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(base + 4*winSecs), Now: time.Now(), MaxFlows: 12})
		calls = append(calls, res.Windows)
		if res.Windows == 0 {
			break
		}
	}
	if !slices.Equal(calls, []int{2, 1, 1, 1, 0}) {
		t.Fatalf("windows a call with at most 12 flows: %v, want [2 1 1 1 0]", calls)
	}
}

// testPruneBatches: the batches of closed windows that ended, and got their last batch, before the
// cutoff go; their samples stay; open windows and recently fed windows keep theirs.
func testPruneBatches(t *testing.T, e *env) {
	save(t, e.st, batch("a", "s", 1, at(-time.Second), 1, w0), batch("a", "s", 2, at(0), 1, w0))
	closeWindow(t, e.st, ref("a", w0))
	save(t, e.st, batch("a", "s", 3, at(2*time.Minute), 1, w1)) // w1 ended at(1m); its last batch came later
	closeWindow(t, e.st, ref("a", w1))
	save(t, e.st, batch("a", "s", 4, at(0), 1, w2)) // open
	before := at(time.Minute)
	res := pruneBatches(t, e.st, store.PruneRequest{Before: before, Now: at(time.Hour)})
	if res.Windows != 1 || res.Batches != 2 || len(res.Samples) != 0 {
		t.Fatalf("pruned %+v, want a/w0's 2 batches", res)
	}
	if again := pruneBatches(t, e.st, store.PruneRequest{Before: before, Now: at(time.Hour)}); again.Windows != 0 || again.Batches != 0 {
		t.Fatalf("a second prune: %+v", again)
	}
	flows, err := e.st.SampleFlows(ctx(t), sampleID("a", w0, 1))
	if err != nil || len(flows) == 0 {
		t.Fatalf("a/w0's sample after its batches were pruned: %q, %v", flows, err)
	}
	if n := openWindows(t, e.st); n != 1 {
		t.Fatalf("%d open windows, want 1", n)
	}
	if d := due(t, e.st, at(time.Hour), time.Minute); len(d) != 1 || d[0] != ref("a", w2) {
		t.Fatalf("due %+v: a pruned window must not be due", d)
	}
	if err := e.st.EndWindow(ctx(t), ref("a", w0), 0); err != nil {
		t.Fatal(err)
	}
	if s, err := e.st.CloseWindow(ctx(t), ref("a", w0), build(nil)); s != nil || err != nil {
		t.Fatalf("closing a pruned window without a late batch: %+v, %v; want nil, nil", s, err)
	}
	rs, err := e.st.RetentionStats(ctx(t))
	if err != nil || !rs.BatchesKeptSince.Equal(at(2*time.Minute)) || !rs.OldestSample.Equal(time.Unix(w0, 0)) {
		t.Fatalf("retention stats %+v, %v; want batches kept since %v", rs, err, at(2*time.Minute).UTC())
	}
	// Everything later goes too.
	if res := pruneBatches(t, e.st, store.PruneRequest{Before: at(time.Hour), Now: at(time.Hour)}); res.Windows != 1 || res.Batches != 1 {
		t.Fatalf("pruned %+v, want a/w1's batch (a/w2 is open)", res)
	}
	if rs, _ := e.st.RetentionStats(ctx(t)); !rs.BatchesKeptSince.IsZero() {
		t.Fatalf("batches kept since %v with none kept", rs.BatchesKeptSince)
	}
}

// testPruneBatchesChunks: a backlog larger than a chunk goes in several bounded calls.
func testPruneBatchesChunks(t *testing.T, e *env) {
	for i := int64(0); i < 10; i++ {
		ws := w0 + i*winSecs
		save(t, e.st, batch("h", "s", uint64(2*i+1), at(0), 1, ws), batch("h", "s", uint64(2*i+2), at(0), 1, ws))
		closeWindow(t, e.st, ref("h", ws))
	}
	var calls []int
	var batches int64
	for len(calls) < 20 {
		res := pruneBatches(t, e.st, store.PruneRequest{Before: at(24 * time.Hour), Now: at(24 * time.Hour), MaxWindows: 4})
		calls = append(calls, res.Windows)
		batches += res.Batches
		if res.Windows == 0 {
			break
		}
	}
	if !slices.Equal(calls, []int{4, 4, 2, 0}) || batches != 20 {
		t.Fatalf("windows a call %v, %d batches; want [4 4 2 0] and 20", calls, batches)
	}
}

// testLateBatchAfterPrune: a batch for a window whose batches were pruned reopens it, and the next
// revision holds the whole window: the latest sample's flows stand in for the pruned batches.
func testLateBatchAfterPrune(t *testing.T, e *env) {
	grace := 10 * time.Second
	save(t, e.st, batch("h", "s", 1, at(-2*time.Second), 1, w0), batch("h", "s", 2, at(-time.Second), 1, w0))
	if err := e.st.EndWindow(ctx(t), ref("h", w0), float64(w0)+0.5); err != nil {
		t.Fatal(err)
	}
	_, c1 := closeWindow(t, e.st, ref("h", w0))
	if c1.Pruned || c1.BaseRevision != 0 {
		t.Fatalf("first close %+v: not pruned", c1)
	}
	if res := pruneBatches(t, e.st, store.PruneRequest{Before: at(time.Hour), Now: at(time.Hour)}); res.Windows != 1 {
		t.Fatalf("pruned %+v", res)
	}
	late := at(2 * time.Hour)
	save(t, e.st, batch("h", "s", 3, late, 1, w0))
	if n := openWindows(t, e.st); n != 1 {
		t.Fatalf("the late batch left %d windows open, want 1", n)
	}
	if d := due(t, e.st, late, grace); len(d) != 0 {
		t.Fatalf("reopened window due at once: %+v", d)
	}
	if d := due(t, e.st, late.Add(grace), grace); len(d) != 1 {
		t.Fatalf("reopened window not due at late batch + grace: %+v", d)
	}
	s2, c2 := closeWindow(t, e.st, ref("h", w0))
	rev1 := "h/s/1/" + itoa(w0) + "|h/s/2/" + itoa(w0) // the flows of revision 1 (build joins batches with '|')
	if !c2.Pruned || c2.BaseRevision != 1 || c2.Revision != 2 || c2.FirstFrameTime != float64(w0)+0.5 {
		t.Fatalf("close after prune: %+v, want pruned, base revision 1, revision 2, the window's first frame time", c2)
	}
	if got := batchesAsStrings(c2); !slices.Equal(got, []string{rev1, "h/s/3/" + itoa(w0)}) {
		t.Fatalf("close after prune got %q, want revision 1's flows then the late batch", got)
	}
	flows, err := e.st.SampleFlows(ctx(t), s2.ID)
	if err != nil || string(flows) != rev1+"|h/s/3/"+itoa(w0) {
		t.Fatalf("revision 2 holds %q (%v), want the whole window", flows, err)
	}
	// The window closed again holds the late batch: it is pruned in turn, and the next late batch
	// builds on revision 2.
	if res := pruneBatches(t, e.st, store.PruneRequest{Before: at(3 * time.Hour), Now: at(3 * time.Hour)}); res.Windows != 1 || res.Batches != 1 {
		t.Fatalf("second prune %+v, want the late batch", res)
	}
	save(t, e.st, batch("h", "s", 4, at(4*time.Hour), 1, w0))
	s3, c3 := closeWindow(t, e.st, ref("h", w0))
	if !c3.Pruned || c3.BaseRevision != 2 || s3.Revision != 3 || len(c3.Batches) != 2 {
		t.Fatalf("third close %+v (sample %+v), want base revision 2", c3, s3)
	}
	if flows, _ := e.st.SampleFlows(ctx(t), s3.ID); string(flows) != rev1+"|h/s/3/"+itoa(w0)+"|h/s/4/"+itoa(w0) {
		t.Fatalf("revision 3 holds %q", flows)
	}
	// Another late batch, with no prune since: the batches received since the prune are still there,
	// and build on the revision that was pruned, not on the latest (which already holds them).
	save(t, e.st, batch("h", "s", 5, at(4*time.Hour), 1, w0))
	_, c4 := closeWindow(t, e.st, ref("h", w0))
	if !c4.Pruned || c4.BaseRevision != 2 || !slices.Equal(batchesAsStrings(c4)[1:], []string{"h/s/4/" + itoa(w0), "h/s/5/" + itoa(w0)}) {
		t.Fatalf("fourth close %+v: want revision 2's flows (the revision pruned), then the batches since", c4)
	}
	if flows, _ := e.st.SampleFlows(ctx(t), sampleID("h", w0, 4)); string(flows) != rev1+"|h/s/3/"+itoa(w0)+"|h/s/4/"+itoa(w0)+"|h/s/5/"+itoa(w0) {
		t.Fatalf("revision 4 holds %q: every flow once", flows)
	}
}

// testLateBatchAfterPruneSamples: once a window is past the sample retention nothing of it is left, so
// a batch for it starts the window afresh (revision 1 with only the late flows), to be pruned again.
func testLateBatchAfterPruneSamples(t *testing.T, e *env) {
	save(t, e.st, batch("h", "s", 1, at(0), 1, w0))
	closeWindow(t, e.st, ref("h", w0))
	pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0), Now: time.Now()})
	save(t, e.st, batch("h", "s", 2, at(time.Hour), 1, w0))
	s, c := closeWindow(t, e.st, ref("h", w0))
	if s == nil || s.Revision != 1 || c.Pruned || !slices.Equal(batchesAsStrings(c), []string{"h/s/2/" + itoa(w0)}) {
		t.Fatalf("late batch after the window was deleted: %+v, %+v", s, c)
	}
	if res := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0), Now: time.Now()}); !slices.Equal(prunedIDs(res), []string{s.ID}) {
		t.Fatalf("pruned %q, want %s", prunedIDs(res), s.ID)
	}
}

// testReplayAfterPrune: the dedup marks survive pruning, so an old batch replayed after its window was
// pruned is acknowledged as a duplicate and not stored again.
func testReplayAfterPrune(t *testing.T, e *env) {
	save(t, e.st, batch("h", "s", 1, at(0), 4, w0), batch("h", "s", 2, at(0), 4, w0), batch("h", "s", 3, at(0), 4, w1))
	closeWindow(t, e.st, ref("h", w0))
	closeWindow(t, e.st, ref("h", w1))
	pruneBatches(t, e.st, store.PruneRequest{Before: at(time.Hour), Now: at(time.Hour)})
	pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0), Now: time.Now()}) // w0 gone entirely, w1 pruned
	flows := host(t, e.st, "h").FlowsReceived
	for _, seq := range []uint64{1, 2, 3} {
		if dup := save(t, e.st, batch("h", "s", seq, at(2*time.Hour), 4, w0+int64(seq-1)/2*winSecs)); !dup[0] {
			t.Fatalf("batch %d replayed after pruning was stored again", seq)
		}
	}
	if n := openWindows(t, e.st); n != 0 {
		t.Fatalf("replayed batches reopened %d windows", n)
	}
	if h := host(t, e.st, "h"); h.FlowsReceived != flows {
		t.Fatalf("replays counted: %d flows, was %d", h.FlowsReceived, flows)
	}
	if dup := save(t, e.st, batch("h", "s", 4, at(2*time.Hour), 1, w1)); dup[0] {
		t.Fatal("a new batch after pruning was taken for a duplicate")
	}
}

// testConcurrentPruneAndLate prunes batches from one store while another saves late batches into the
// same windows: whichever comes first, every window's last revision holds all its flows.
func testConcurrentPruneAndLate(t *testing.T, e *env) {
	other := e.open()
	const n = 20
	for i := 0; i < n; i++ {
		save(t, e.st, batch("h", "s", uint64(i+1), at(0), 1, w0+int64(i)*winSecs))
	}
	for i := 0; i < n; i++ {
		closeWindow(t, e.st, ref("h", w0+int64(i)*winSecs))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			if _, err := other.SaveBatches(ctx(t), []store.Batch{batch("h", "s", uint64(n+i+1), at(time.Second), 1, w0+int64(i)*winSecs)}); err != nil {
				t.Errorf("SaveBatches: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	r := store.PruneRequest{Before: at(time.Hour), Now: at(time.Hour), MaxWindows: 2}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if _, err := e.st.PruneBatches(ctx(t), r); err != nil {
			t.Fatalf("PruneBatches: %v", err)
		}
	}
	for i := 0; i < n; i++ {
		closeWindow(t, e.st, ref("h", w0+int64(i)*winSecs))
	}
	all, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{Host: "h", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	latest := map[int64]store.Sample{}
	for _, s := range all {
		if s.Revision > latest[s.WindowStart].Revision {
			latest[s.WindowStart] = s
		}
	}
	for i := 0; i < n; i++ {
		ws := w0 + int64(i)*winSecs
		s := latest[ws]
		flows, err := e.st.SampleFlows(ctx(t), s.ID)
		if err != nil {
			t.Fatalf("window %d: %v", ws, err)
		}
		got := strings.Split(string(flows), "|")
		want := []string{fmt.Sprintf("h/s/%d/%d", i+1, ws), fmt.Sprintf("h/s/%d/%d", n+i+1, ws)}
		if !slices.Equal(got, want) {
			t.Errorf("window %d, revision %d holds %q, want %q", ws, s.Revision, got, want)
		}
	}
}

// testConcurrentPruners runs two pruners on one database: each window is deleted once.
func testConcurrentPruners(t *testing.T, e *env) {
	other := e.open()
	const n = 30
	for i := 0; i < n; i++ {
		ws := w0 + int64(i)*winSecs
		save(t, e.st, batch("h", "s", uint64(i+1), at(0), 1, ws))
		closeWindow(t, e.st, ref("h", ws))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, st := range []store.Store{e.st, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				res, err := st.PruneSamples(ctx(t), store.PruneRequest{Before: endOf(w0 + n*winSecs), Now: time.Now(), MaxWindows: 3})
				if err != nil {
					t.Errorf("PruneSamples: %v", err)
					return
				}
				mu.Lock()
				for _, x := range res.Samples {
					seen[x.ID]++
				}
				mu.Unlock()
				if res.Windows == 0 && len(res.Samples) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d samples pruned, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s pruned %d times", id, k)
		}
	}
	if all, _, _ := e.st.ListSamples(ctx(t), store.SampleFilter{}); len(all) != 0 {
		t.Fatalf("%d samples left", len(all))
	}
}
