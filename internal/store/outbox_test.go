package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

// outboxBackends runs fn against SQLite and, when FLOWFLEET_TEST_POSTGRES is set, PostgreSQL; dsn gives
// the same database each call within one test (for reopen tests).
func outboxBackends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "flowfleet.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, storetest.PostgresDSN(t)) })
}

func openStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const ws0 = int64(1_700_000_100)

// writeSample stores a batch for host's window ws and closes it into a sample, queued for the relay
// when relay is true.
func writeSample(t *testing.T, st store.Store, host string, ws int64, relay bool) *store.Sample {
	t.Helper()
	ctx := tctx(t)
	b := store.Batch{Host: host, StreamID: "s", Seq: uint64(ws), Received: time.Now(), Parts: []store.BatchPart{{
		WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte("flows")}}}
	if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
	s, err := st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60},
		func(c store.WindowContent) (store.NewSample, error) {
			id := fmt.Sprintf("%s_%d", c.Host, c.WindowStart)
			return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: 1, Bytes: 5, State: store.StateWritten,
				Content: []byte("content of " + id), Flows: []byte("flows"), Relay: relay}, nil
		})
	if err != nil || s == nil {
		t.Fatalf("close window: %v %v", s, err)
	}
	return s
}

func stats(t *testing.T, st store.Store) store.OutboxStats {
	t.Helper()
	s, err := st.OutboxStats(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claim(t *testing.T, st store.Store, owner string, now time.Time, lease time.Duration, limit int) []store.OutboxEntry {
	t.Helper()
	e, err := st.ClaimOutbox(tctx(t), owner, now, lease, limit)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestOutboxQueuedWithSample(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		before := time.Now().Add(-time.Millisecond)
		writeSample(t, st, "web01", ws0, true)
		writeSample(t, st, "web02", ws0, false) // relay off: not queued
		s := stats(t, st)
		if s.Queued != 1 || s.Polling != 0 || s.Oldest.Before(before.Truncate(time.Millisecond)) {
			t.Fatalf("stats %+v, want one queued entry from now", s)
		}
		got := claim(t, st, "a", time.Now(), time.Minute, 10)
		if len(got) != 1 || got[0].SampleID != "web01_1700000100" || got[0].FileName != "web01_1700000100.bf" ||
			got[0].Phase != store.PhaseUpload || got[0].Attempts != 0 || !got[0].AmbiguousSince.IsZero() {
			t.Fatalf("claimed %+v", got)
		}
		if again := claim(t, st, "b", time.Now(), time.Minute, 10); len(again) != 0 {
			t.Fatalf("a claimed entry was claimed again: %+v", again)
		}
	})
}

// A failed build leaves neither a sample nor an outbox entry: both are in one transaction.
func TestOutboxRollsBackWithSample(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		ctx := tctx(t)
		b := store.Batch{Host: "h", StreamID: "s", Seq: 1, Received: time.Now(), Parts: []store.BatchPart{{
			WindowStart: ws0, WindowSeconds: 60, FlowCount: 1, Flows: []byte("f")}}}
		if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
			t.Fatal(err)
		}
		_, err := st.CloseWindow(ctx, store.WindowRef{Host: "h", WindowStart: ws0, WindowSeconds: 60},
			func(store.WindowContent) (store.NewSample, error) { return store.NewSample{}, errors.New("disk full") })
		if err == nil {
			t.Fatal("no error")
		}
		if s := stats(t, st); s.Queued != 0 {
			t.Fatalf("stats %+v after a failed close", s)
		}
	})
}

func TestOutboxRetryCompletePoll(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		ctx := tctx(t)
		writeSample(t, st, "web01", ws0, true)
		id := "web01_1700000100"
		now := time.Now()
		e := claim(t, st, "a", now, time.Minute, 1)[0]

		// Another owner cannot release a claim it does not hold.
		if err := st.RetryOutbox(ctx, store.OutboxRetry{SampleID: id, Owner: "b", Due: now}); err != nil {
			t.Fatal(err)
		}
		if got := claim(t, st, "b", now, time.Minute, 1); len(got) != 0 {
			t.Fatalf("retry by a non-owner released the claim: %+v", got)
		}
		amb := now.Add(-time.Second).Truncate(time.Millisecond)
		if err := st.RetryOutbox(ctx, store.OutboxRetry{SampleID: id, Owner: "a", Due: now.Add(10 * time.Second),
			Attempted: true, AmbiguousSince: amb, LastError: "timeout"}); err != nil {
			t.Fatal(err)
		}
		if got := claim(t, st, "a", now.Add(9*time.Second), time.Minute, 1); len(got) != 0 {
			t.Fatalf("claimed before due: %+v", got)
		}
		e = claim(t, st, "a", now.Add(10*time.Second), time.Minute, 1)[0]
		if e.Attempts != 1 || !e.AmbiguousSince.Equal(amb) || e.LastError != "timeout" {
			t.Fatalf("after a retry: %+v", e)
		}
		if x, _ := st.GetSample(ctx, id); x.State != store.StateWritten || x.RelayError != "timeout" {
			t.Fatalf("sample waiting for a retry: %+v", x)
		}
		// A later ambiguous attempt keeps the earliest time.
		if err := st.RetryOutbox(ctx, store.OutboxRetry{SampleID: id, Owner: "a", Due: now.Add(10 * time.Second),
			Attempted: true, AmbiguousSince: now}); err != nil {
			t.Fatal(err)
		}
		e = claim(t, st, "a", now.Add(10*time.Second), time.Minute, 1)[0]
		if e.Attempts != 2 || !e.AmbiguousSince.Equal(amb) {
			t.Fatalf("after a second retry: %+v", e)
		}

		s, err := st.CompleteOutbox(ctx, store.OutboxCompletion{SampleID: id, Owner: "a", State: store.StateRelayed,
			RemoteID: "00dc397c3f85472b9c7f4203c408e4fb", PollAt: now.Add(20 * time.Second), PollUntil: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if s.State != store.StateRelayed || s.RemoteID != "00dc397c3f85472b9c7f4203c408e4fb" || s.RelayError != "" {
			t.Fatalf("sample after upload: %+v", s)
		}
		if got := stats(t, st); got.Queued != 0 || got.Polling != 1 || !got.Oldest.IsZero() {
			t.Fatalf("stats while polling: %+v", got)
		}
		e = claim(t, st, "a", now.Add(20*time.Second), time.Minute, 1)[0]
		if e.Phase != store.PhasePoll || e.RemoteID != "00dc397c3f85472b9c7f4203c408e4fb" || !e.PollUntil.Equal(now.Add(time.Hour).Truncate(time.Millisecond)) {
			t.Fatalf("poll entry %+v", e)
		}
		s, err = st.CompleteOutbox(ctx, store.OutboxCompletion{SampleID: id, Owner: "a", State: store.StateProcessed,
			RemoteID: e.RemoteID})
		if err != nil || s.State != store.StateProcessed {
			t.Fatalf("processed: %+v %v", s, err)
		}
		if got := stats(t, st); got.Queued != 0 || got.Polling != 0 {
			t.Fatalf("stats at the end: %+v", got)
		}
		if got, _ := st.GetSample(ctx, id); got.State != store.StateProcessed || got.RemoteID != e.RemoteID {
			t.Fatalf("stored sample %+v", got)
		}
	})
}

// A claim that runs out without an outcome (its holder died mid-upload) comes back ambiguous, from the
// time it was claimed.
func TestOutboxExpiredClaimIsAmbiguous(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		writeSample(t, st, "web01", ws0, true)
		t0 := time.Now().Truncate(time.Millisecond)
		claim(t, st, "a", t0, time.Second, 1)
		if got := claim(t, st, "b", t0.Add(500*time.Millisecond), time.Second, 1); len(got) != 0 {
			t.Fatalf("claimed under a live lease: %+v", got)
		}
		got := claim(t, st, "b", t0.Add(time.Second), time.Second, 1)
		if len(got) != 1 || !got[0].AmbiguousSince.Equal(t0) {
			t.Fatalf("after the lease ran out: %+v, want ambiguous since %v", got, t0)
		}
	})
}

// A restart releases its own claims at once (no waiting for the lease), as ambiguous.
func TestOutboxSurvivesReopen(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		writeSample(t, st, "web01", ws0, true)
		writeSample(t, st, "web02", ws0, true)
		t0 := time.Now().Truncate(time.Millisecond)
		if got := claim(t, st, "collector-1", t0, time.Hour, 1); len(got) != 1 {
			t.Fatalf("claimed %+v", got)
		}
		st.Close()

		st = openStore(t, dsn)
		if s := stats(t, st); s.Queued != 2 {
			t.Fatalf("after reopen: %+v", s)
		}
		n, err := st.ReleaseOutbox(tctx(t), "collector-1")
		if err != nil || n != 1 {
			t.Fatalf("release: %d %v", n, err)
		}
		got := claim(t, st, "collector-1", time.Now(), time.Minute, 10)
		if len(got) != 2 {
			t.Fatalf("claimed %+v after release", got)
		}
		for _, e := range got {
			if e.SampleID == "web01_1700000100" && !e.AmbiguousSince.Equal(t0) {
				t.Errorf("interrupted entry %+v not ambiguous since %v", e, t0)
			}
			if e.SampleID == "web02_1700000100" && !e.AmbiguousSince.IsZero() {
				t.Errorf("untouched entry %+v is ambiguous", e)
			}
		}
	})
}

func TestEnqueueRelay(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		ctx := tctx(t)
		writeSample(t, st, "web01", ws0, true)
		id := "web01_1700000100"
		claim(t, st, "a", time.Now(), time.Minute, 1)
		if _, err := st.CompleteOutbox(ctx, store.OutboxCompletion{SampleID: id, Owner: "a", State: store.StateRelayFailed,
			RelayError: "HTTP 403"}); err != nil {
			t.Fatal(err)
		}
		if s := stats(t, st); s.Queued != 0 {
			t.Fatalf("failed sample still queued: %+v", s)
		}
		s, err := st.EnqueueRelay(ctx, id, time.Now())
		if err != nil || s.State != store.StateWritten || s.RelayError != "" || s.RemoteID != "" {
			t.Fatalf("re-queued: %+v %v", s, err)
		}
		got := claim(t, st, "a", time.Now(), time.Minute, 1)
		if len(got) != 1 || got[0].Attempts != 0 || got[0].Phase != store.PhaseUpload {
			t.Fatalf("claimed %+v", got)
		}
		if _, err := st.EnqueueRelay(ctx, "nope", time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown sample: %v", err)
		}
	})
}

// Concurrent claimers get disjoint entries (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one writer).
func TestOutboxConcurrentClaims(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		const n = 40
		for i := range n {
			writeSample(t, st, fmt.Sprintf("h%02d", i), ws0, true)
		}
		var mu sync.Mutex
		var all []string
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprintf("w%d", w)
				for {
					got, err := st.ClaimOutbox(context.Background(), owner, time.Now(), time.Hour, 3)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, e := range got {
						all = append(all, e.SampleID)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		sort.Strings(all)
		if len(all) != n {
			t.Fatalf("claimed %d entries, want %d: %v", len(all), n, all)
		}
		for i := 1; i < len(all); i++ {
			if all[i] == all[i-1] {
				t.Fatalf("%s claimed twice", all[i])
			}
		}
	})
}
