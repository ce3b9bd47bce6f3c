package storetest

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// backoff is the suite's close backoff: attempt n waits n minutes.
func backoff(n int) time.Duration { return time.Duration(n) * time.Minute }

func failure(w store.WindowRef, msg string, when time.Time) store.WindowFailure {
	return store.WindowFailure{WindowRef: w, Error: msg, At: when, Backoff: backoff,
		Name: func(rev int) (string, string) { id := sampleID(w.Host, w.WindowStart, rev); return id, id + ".bf" }}
}

func hasRef(refs []store.WindowRef, w store.WindowRef) bool {
	for _, r := range refs {
		if r.Host == w.Host && r.WindowStart == w.WindowStart {
			return true
		}
	}
	return false
}

// testFailWindowIsolates: a window whose close failed is not due until its backoff ends, while the
// others stay due; it shows as a write_failed sample with its error until a close succeeds, which
// replaces the placeholder and clears the failure.
func testFailWindowIsolates(t *testing.T, e *env) {
	save(t, e.st, batch("a", "s", 1, at(0), 3, w0), batch("b", "s", 1, at(0), 1, w0))
	now := at(time.Hour)
	a, b := ref("a", w0), ref("b", w0)
	n, err := e.st.FailWindow(ctx(t), failure(a, "write a_1.bf: is a directory", now))
	if err != nil || n != 1 {
		t.Fatalf("FailWindow: %d, %v; want 1 attempt", n, err)
	}
	if d := due(t, e.st, now, 0); hasRef(d, a) || !hasRef(d, b) {
		t.Fatalf("due right after a's failure: %v; want b only", d)
	}
	if d := due(t, e.st, now.Add(backoff(1)), 0); !hasRef(d, a) {
		t.Fatalf("due after a's backoff: %v; want a again", d)
	}
	long := strings.Repeat("x", 5000)
	if n, err = e.st.FailWindow(ctx(t), failure(a, long, now.Add(backoff(1)))); err != nil || n != 2 {
		t.Fatalf("second FailWindow: %d, %v; want 2 attempts", n, err)
	}
	if d := due(t, e.st, now.Add(backoff(1)+backoff(2)-time.Millisecond), 0); hasRef(d, a) {
		t.Fatalf("a due before its second backoff (2 min) ended: %v", d)
	}
	x, err := e.st.GetSample(ctx(t), sampleID("a", w0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if x.State != store.StateWriteFailed || len(x.WriteError) != store.MaxWriteError || x.FlowCount != 3 || x.Revision != 1 {
		t.Fatalf("placeholder: %+v; want write_failed, error cut to %d bytes, 3 flows, revision 1", x, store.MaxWriteError)
	}
	list, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{State: store.StateWriteFailed})
	if err != nil || len(list) != 1 || list[0].ID != x.ID {
		t.Fatalf("ListSamples(write_failed): %v, %v; want the placeholder", ids(list), err)
	}
	if n, _ := e.st.CountOpenWindows(ctx(t)); n != 2 {
		t.Fatalf("%d open windows; a failed window stays open", n)
	}
	s, got := closeWindow(t, e.st, a)
	if s == nil || s.State != store.StateWritten || got.CloseAttempts != 2 {
		t.Fatalf("close after failures: %+v (attempts seen %d); want written, 2 attempts", s, got.CloseAttempts)
	}
	x, err = e.st.GetSample(ctx(t), s.ID)
	if err != nil || x.State != store.StateWritten || x.WriteError != "" {
		t.Fatalf("sample after a successful retry: %+v, %v", x, err)
	}
	list, _, _ = e.st.ListSamples(ctx(t), store.SampleFilter{Host: "a"})
	if len(list) != 1 {
		t.Fatalf("samples of a: %v; the written sample replaces the placeholder", ids(list))
	}
	if byFile, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{FileName: s.FileName}); err != nil || len(byFile) != 1 || byFile[0].ID != s.ID {
		t.Fatalf("ListSamples by file name: %v, %v", ids(byFile), err)
	}
	// A later failure of the window (a new revision) starts counting again.
	save(t, e.st, batch("a", "s", 2, at(2*time.Hour), 1, w0))
	if n, err = e.st.FailWindow(ctx(t), failure(a, "again", at(2*time.Hour))); err != nil || n != 1 {
		t.Fatalf("FailWindow of revision 2: %d, %v; want 1", n, err)
	}
	if x, err := e.st.GetSample(ctx(t), sampleID("a", w0, 2)); err != nil || x.State != store.StateWriteFailed {
		t.Fatalf("revision 2 placeholder: %+v, %v", x, err)
	}
	// A window that is not open has nothing to fail.
	closeWindow(t, e.st, b)
	if n, err := e.st.FailWindow(ctx(t), failure(b, "late", now)); err != nil || n != 0 {
		t.Fatalf("FailWindow of a closed window: %d, %v; want 0, nil", n, err)
	}
}

// partOf makes a batch part of n flows of 10 bytes each, with their ends.
func partOf(ws int64, tag byte, n int) store.BatchPart {
	p := store.BatchPart{WindowStart: ws, WindowSeconds: winSecs, FlowCount: n, Flows: bytes.Repeat([]byte{tag}, 10*n)}
	for i := range n {
		p.FlowEnds = append(p.FlowEnds, 10*(i+1))
	}
	return p
}

// testWindowLimits: the per-window bound keeps the flows that fit, cuts a part at its last fitting flow,
// takes nothing more once the window dropped a flow, reports the drops on the parts (the overflow once)
// and records them on the window and its sample.
func testWindowLimits(t *testing.T, e *env) {
	lim := store.WindowLimits{MaxFlows: 5, MaxBytes: 1000}
	b1 := store.Batch{Host: "h", StreamID: "s", Seq: 1, Received: at(0), Limits: lim, Parts: []store.BatchPart{partOf(w0, 'a', 3)}}
	b2 := store.Batch{Host: "h", StreamID: "s", Seq: 2, Received: at(0), Limits: lim, Parts: []store.BatchPart{partOf(w0, 'b', 3), partOf(w1, 'c', 1)}}
	save(t, e.st, b1, b2)
	if p := b2.Parts[0]; p.Dropped != 1 || !p.Overflowed {
		t.Fatalf("part over the bound: dropped %d, overflowed %v; want 1, true", p.Dropped, p.Overflowed)
	}
	if p := b2.Parts[1]; p.Dropped != 0 || p.Overflowed {
		t.Fatalf("other window's part: dropped %d, overflowed %v; want 0, false", p.Dropped, p.Overflowed)
	}
	b3 := store.Batch{Host: "h", StreamID: "s", Seq: 3, Received: at(0), Limits: lim, Parts: []store.BatchPart{partOf(w0, 'd', 1)}}
	save(t, e.st, b3)
	if p := b3.Parts[0]; p.Dropped != 1 || p.Overflowed {
		t.Fatalf("part after the overflow: dropped %d, overflowed %v; want 1, false (logged once)", p.Dropped, p.Overflowed)
	}
	s, got := closeWindow(t, e.st, ref("h", w0))
	if want := []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"}; !slices.Equal(batchesAsStrings(got), want) {
		t.Fatalf("window content %q; want %q", batchesAsStrings(got), want)
	}
	if got.FlowsDropped != 2 || s.FlowsDropped != 2 {
		t.Fatalf("flows dropped: content %d, sample %d; want 2", got.FlowsDropped, s.FlowsDropped)
	}
	if x, _ := e.st.GetSample(ctx(t), s.ID); x.FlowsDropped != 2 {
		t.Fatalf("stored sample's flows_dropped %d; want 2", x.FlowsDropped)
	}
	// The byte bound: a part without ends that does not fit is dropped whole.
	byBytes := store.WindowLimits{MaxBytes: 25}
	p := partOf(w2, 'e', 2)
	q := partOf(w2, 'f', 2)
	q.FlowEnds = nil
	b4 := store.Batch{Host: "h", StreamID: "s", Seq: 4, Received: at(0), Limits: byBytes, Parts: []store.BatchPart{p}}
	b5 := store.Batch{Host: "h", StreamID: "s", Seq: 5, Received: at(0), Limits: byBytes, Parts: []store.BatchPart{q}}
	save(t, e.st, b4, b5)
	if b4.Parts[0].Dropped != 0 || b5.Parts[0].Dropped != 2 || !b5.Parts[0].Overflowed {
		t.Fatalf("byte bound: dropped %d and %d (overflow %v); want 0 and 2 (true)", b4.Parts[0].Dropped, b5.Parts[0].Dropped, b5.Parts[0].Overflowed)
	}
}

// testFlowChunks: a sample stored in chunks gives back any range of them, and all of them joined as its
// flows; the chunks go with the sample when it is pruned.
func testFlowChunks(t *testing.T, e *env) {
	save(t, e.st, batch("h", "s", 1, at(0), 1, w0))
	s, err := e.st.CloseWindow(ctx(t), ref("h", w0), func(c store.WindowContent) (store.NewSample, error) {
		id := sampleID(c.Host, c.WindowStart, c.Revision)
		return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: 3, State: store.StateWritten,
			Content: []byte("bf"), FlowChunks: [][]byte{[]byte("c0"), []byte("c1"), []byte("c2")}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.st.SampleFlowChunks(ctx(t), s.ID, 1, 5)
	if err != nil || len(got) != 2 || string(got[0]) != "c1" || string(got[1]) != "c2" {
		t.Fatalf("chunks [1, 5): %q, %v; want c1, c2", got, err)
	}
	if got, _ := e.st.SampleFlowChunks(ctx(t), s.ID, 3, 4); len(got) != 0 {
		t.Fatalf("chunks past the end: %q", got)
	}
	if flows, err := e.st.SampleFlows(ctx(t), s.ID); err != nil || string(flows) != "c0c1c2" {
		t.Fatalf("SampleFlows: %q, %v; want the chunks joined", flows, err)
	}
	if got := pruneSamples(t, e.st, store.PruneRequest{Before: endOf(w0), Now: time.Now()}); len(got.Samples) != 1 {
		t.Fatalf("pruned %v; want the sample", prunedIDs(got))
	}
	if got, _ := e.st.SampleFlowChunks(ctx(t), s.ID, 0, 3); len(got) != 0 {
		t.Fatalf("chunks left after the sample was pruned: %q", got)
	}
}
