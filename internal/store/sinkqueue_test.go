package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// sinkSample records a sample queued for the sink (and not for the relay).
func sinkSample(t *testing.T, st store.Store, host string, ws int64) *store.Sample {
	t.Helper()
	s, err := st.CloseWindow(tctx(t), saveWindow(t, st, host, ws), func(c store.WindowContent) (store.NewSample, error) {
		id := fmt.Sprintf("%s_%d", c.Host, c.WindowStart)
		return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: 1, Bytes: 5, State: store.StateClosed,
			Content: []byte("content"), Flows: []byte("flows"), Sink: true}, nil
	})
	if err != nil || s == nil {
		t.Fatalf("close window: %v %v", s, err)
	}
	return s
}

func saveWindow(t *testing.T, st store.Store, host string, ws int64) store.WindowRef {
	t.Helper()
	b := store.Batch{Host: host, StreamID: "s", Seq: uint64(ws), Received: time.Now(), Parts: []store.BatchPart{{
		WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte("flows")}}}
	if _, err := st.SaveBatches(tctx(t), []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
	return store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60}
}

// TestSinkQueueLifecycle: a sample is queued with its commit (and only when asked), claimed by one
// owner at a time in queue order, stays queued after a failed attempt or a lost claim, and leaves the
// queue only by CompleteSink of the owner that holds the claim.
func TestSinkQueueLifecycle(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		ctx := tctx(t)
		writeSample(t, st, "other", ws0, false) // not for the sink
		a := sinkSample(t, st, "a", ws0)
		b := sinkSample(t, st, "b", ws0+60)
		if s, err := st.SinkStats(ctx); err != nil || s.Queued != 2 || s.Oldest.IsZero() {
			t.Fatalf("stats = %+v, %v; want 2 queued", s, err)
		}
		now := time.Now()
		got, err := st.ClaimSink(ctx, "w1", now, time.Minute, 10)
		if err != nil || len(got) != 2 || got[0].SampleID != a.ID || got[1].SampleID != b.ID {
			t.Fatalf("claim = %+v, %v; want %s then %s", got, err, a.ID, b.ID)
		}
		if again, _ := st.ClaimSink(ctx, "w2", now, time.Minute, 10); len(again) != 0 {
			t.Fatalf("claimed entries are claimed again: %+v", again)
		}
		// A failed attempt: due later, counted.
		if err := st.RetrySink(ctx, a.ID, "w1", now.Add(time.Hour), "bus down"); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.CompleteSink(ctx, a.ID, "w1"); err != nil || ok {
			t.Fatalf("complete after release = %v, %v; want false", ok, err)
		}
		if got, _ := st.ClaimSink(ctx, "w2", now, time.Minute, 10); len(got) != 0 {
			t.Fatalf("an entry due later is claimed now: %+v", got)
		}
		// Later, a is due again and w1's claim on b has run out: w2 takes both, and w1 can no longer
		// complete b.
		later := now.Add(2 * time.Hour)
		got, _ = st.ClaimSink(ctx, "w2", later, time.Minute, 10)
		if len(got) != 2 || got[0].SampleID != a.ID || got[0].Attempts != 1 || got[1].SampleID != b.ID {
			t.Fatalf("claim after due = %+v; want %s with 1 attempt, then %s", got, a.ID, b.ID)
		}
		if ok, _ := st.CompleteSink(ctx, b.ID, "w1"); ok {
			t.Fatal("an owner whose claim ran out completed the entry")
		}
		if ok, err := st.CompleteSink(ctx, a.ID, "w2"); err != nil || !ok {
			t.Fatalf("complete %s = %v, %v", a.ID, ok, err)
		}
		if n, err := st.ReleaseSink(ctx, "w2"); err != nil || n != 1 {
			t.Fatalf("release = %d, %v; want 1", n, err)
		}
		got, _ = st.ClaimSink(ctx, "w4", later, time.Minute, 10)
		if len(got) != 1 || got[0].SampleID != b.ID {
			t.Fatalf("after release: %+v; want %s", got, b.ID)
		}
		if ok, err := st.CompleteSink(ctx, b.ID, "w4"); err != nil || !ok {
			t.Fatalf("complete = %v, %v", ok, err)
		}
		if s, _ := st.SinkStats(ctx); s.Queued != 0 || !s.Oldest.IsZero() {
			t.Fatalf("stats after completion = %+v; want empty", s)
		}
	})
}

// TestSinkQueueConcurrentClaims: concurrent owners never claim one entry twice.
func TestSinkQueueConcurrentClaims(t *testing.T) {
	outboxBackends(t, func(t *testing.T, dsn string) {
		st := openStore(t, dsn)
		const n = 30
		for i := range n {
			sinkSample(t, st, fmt.Sprintf("h%02d", i), ws0)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := st.ClaimSink(context.Background(), fmt.Sprintf("w%d", w), time.Now(), time.Hour, 2)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, e := range got {
						seen[e.SampleID]++
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
		if len(seen) != n {
			t.Fatalf("claimed %d entries, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("%s claimed %d times", id, c)
			}
		}
	})
}
