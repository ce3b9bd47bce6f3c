package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// uploadAndProcess takes a queued sample through the upload and poll phases as the relay worker does,
// up to the enrich phase, and returns the claimed enrich entry.
func uploadAndProcess(t *testing.T, st store.Store, id string, now time.Time) store.OutboxEntry {
	t.Helper()
	e := claim(t, st, "w", now, time.Minute, 10)
	if len(e) != 1 || e[0].Phase != store.PhaseUpload {
		t.Fatalf("claim upload: %+v", e)
	}
	if _, err := st.CompleteOutbox(tctx(t), store.OutboxCompletion{SampleID: id, Owner: "w", State: store.StateRelayed,
		RemoteID: "r1", PollAt: now, PollUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if e = claim(t, st, "w", now, time.Minute, 10); len(e) != 1 || e[0].Phase != store.PhasePoll {
		t.Fatalf("claim poll: %+v", e)
	}
	x, err := st.CompleteOutbox(tctx(t), store.OutboxCompletion{SampleID: id, Owner: "w", State: store.StateProcessed,
		RemoteID: "r1", PollAt: now, PollUntil: now.Add(time.Hour), NextPhase: store.PhaseEnrich, Processed: now})
	if err != nil {
		t.Fatal(err)
	}
	if x.State != store.StateProcessed || !x.Processed.Equal(now.Truncate(time.Millisecond)) {
		t.Fatalf("after processed: state %s processed %v", x.State, x.Processed)
	}
	if s := stats(t, st); s.Enriching != 1 || s.Polling != 0 {
		t.Fatalf("stats %+v: want 1 enriching", s)
	}
	e = claim(t, st, "w", now, time.Minute, 10)
	if len(e) != 1 || e[0].Phase != store.PhaseEnrich || e[0].RemoteID != "r1" || e[0].Attempts != 0 ||
		!e[0].PhaseStarted.Equal(e[0].PhaseStarted.Truncate(time.Millisecond)) || e[0].PhaseStarted.IsZero() {
		t.Fatalf("claim enrich: %+v", e)
	}
	return e[0]
}

// The enrich and report phases: labels (chunked by FlowChunkFlows), destinations with expiry and the
// sample's verdict are recorded with the phase changes, bounded, and read back; a sample queued again
// for enrichment goes back to polling.
func TestEnrichmentPhases(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		x := writeSample(t, st, "h", ws0, true)
		now := time.Now().UTC()
		uploadAndProcess(t, st, x.ID, now)

		labels := make([]store.FlowLabel, store.FlowChunkFlows+2)
		for i := range labels {
			if i != 5 {
				labels[i] = store.FlowLabel{Category: "web", FlowID: "f" + strings.Repeat("x", i%3)}
			}
		}
		labels[1].EventID = "ev1"
		labels[2].Category = strings.Repeat("é", store.MaxLabelField) // 2 bytes a rune: cut to 128 runes
		dests := []store.Destination{
			{Name: "a.example:443", Title: "A", Tags: []string{"cdn", "web"}, Expires: now.Add(time.Hour)},
			{Name: "old.example:80", Title: "Old", Expires: now.Add(-time.Second)},
		}
		if _, err := st.CompleteOutbox(tctx(t), store.OutboxCompletion{SampleID: x.ID, Owner: "w", State: store.StateProcessed,
			RemoteID: "r1", PollAt: now, PollUntil: now.Add(time.Hour), NextPhase: store.PhaseReport,
			Labels: labels, Destinations: dests,
			Enrichment: &store.Enrichment{FlowsMatched: 1001, FlowsUnmatched: 1, RemoteUnmatched: 2}}); err != nil {
			t.Fatal(err)
		}
		got, err := st.SampleFlowLabels(tctx(t), x.ID, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || len(got[0]) != store.FlowChunkFlows || len(got[1]) != 2 {
			t.Fatalf("labels: %d chunks", len(got))
		}
		if got[0][1] != (store.FlowLabel{Category: "web", FlowID: "fx", EventID: "ev1"}) || got[0][5] != (store.FlowLabel{}) ||
			got[1][1].FlowID != "f"+strings.Repeat("x", (store.FlowChunkFlows+1)%3) {
			t.Fatalf("labels read back: %+v %+v %+v", got[0][1], got[0][5], got[1][1])
		}
		if c := got[0][2].Category; len(c) != store.MaxLabelField || !strings.HasPrefix(strings.Repeat("é", 200), c) {
			t.Fatalf("long category kept %d bytes, want %d at a rune boundary", len(c), store.MaxLabelField)
		}
		if later, err := st.SampleFlowLabels(tctx(t), x.ID, 1, 2); err != nil || len(later) != 1 || len(later[0]) != 2 {
			t.Fatalf("labels of chunk 1: %v %v", later, err)
		}
		d, err := st.Destinations(tctx(t), []string{"a.example:443", "old.example:80", "none:1"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 1 || d["a.example:443"].Title != "A" || strings.Join(d["a.example:443"].Tags, ",") != "cdn,web" {
			t.Fatalf("destinations: %+v (the expired one must not be returned)", d)
		}

		e := claim(t, st, "w", now, time.Minute, 10)
		if len(e) != 1 || e[0].Phase != store.PhaseReport {
			t.Fatalf("claim report: %+v", e)
		}
		x2, err := st.CompleteOutbox(tctx(t), store.OutboxCompletion{SampleID: x.ID, Owner: "w", State: store.StateEnriched,
			RemoteID: "r1", Enrichment: &store.Enrichment{Verdict: "malicious", Confidence: "high", Summary: "2 flows",
				FlowsMatched: 1001, FlowsUnmatched: 1, RemoteUnmatched: 2}})
		if err != nil {
			t.Fatal(err)
		}
		want := store.Enrichment{Verdict: "malicious", Confidence: "high", Summary: "2 flows", FlowsMatched: 1001,
			FlowsUnmatched: 1, RemoteUnmatched: 2}
		if x2.State != store.StateEnriched || x2.Enrichment != want || x2.RemoteID != "r1" {
			t.Fatalf("enriched sample: %s %+v", x2.State, x2.Enrichment)
		}
		if s := stats(t, st); s.Enriching != 0 || s.Queued != 0 {
			t.Fatalf("stats after enrichment %+v", s)
		}

		// Again: queued in the poll phase with its remote id; twice is refused.
		again, err := st.EnqueueEnrich(tctx(t), x.ID, now, now.Add(time.Hour))
		if err != nil || again.State != store.StateEnriched {
			t.Fatalf("enqueue enrich: %v %v", again, err)
		}
		if _, err := st.EnqueueEnrich(tctx(t), x.ID, now, now.Add(time.Hour)); !errors.Is(err, store.ErrQueued) {
			t.Fatalf("second enqueue: %v, want ErrQueued", err)
		}
		if e := claim(t, st, "w", now, time.Minute, 10); len(e) != 1 || e[0].Phase != store.PhasePoll || e[0].RemoteID != "r1" {
			t.Fatalf("claim after enqueue: %+v", e)
		}
		if _, err := st.EnqueueEnrich(tctx(t), "nope", now, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown sample: %v", err)
		}
		y := writeSample(t, st, "h", ws0+60, false)
		if _, err := st.EnqueueEnrich(tctx(t), y.ID, now, now); !errors.Is(err, store.ErrNotRelayed) {
			t.Fatalf("sample never relayed: %v", err)
		}
	})
}

// EnqueueEnrichAll queues every sample NetworkSage has that is relayed, processed or enrichment_failed
// and not queued, once.
func TestEnqueueEnrichAll(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		now := time.Now().UTC()
		var ids []string
		for i, state := range []store.SampleState{store.StateRelayed, store.StateProcessed, store.StateEnrichmentFailed,
			store.StateEnriched, store.StateRelayFailed} {
			x := writeSample(t, st, "h", ws0+int64(i)*60, false)
			if _, err := st.SetSampleState(tctx(t), x.ID, state, "r"+x.ID, ""); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, x.ID)
		}
		writeSample(t, st, "h", ws0+600, false) // written: no remote id
		n, err := st.EnqueueEnrichAll(tctx(t), now, now.Add(time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("enqueue all: %d %v, want 3", n, err)
		}
		if n, err := st.EnqueueEnrichAll(tctx(t), now, now.Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("enqueue all again: %d %v, want 0", n, err)
		}
		got := map[string]bool{}
		for _, e := range claim(t, st, "w", now, time.Minute, 10) {
			if e.Phase != store.PhasePoll || e.RemoteID != "r"+e.SampleID {
				t.Fatalf("entry %+v", e)
			}
			got[e.SampleID] = true
		}
		if len(got) != 3 || !got[ids[0]] || !got[ids[1]] || !got[ids[2]] {
			t.Fatalf("queued %v, want %v", got, ids[:3])
		}
	})
}
