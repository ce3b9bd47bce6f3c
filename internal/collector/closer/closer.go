// Package closer is how a window becomes a sample, in one place: due windows → ordered flows → encoded
// sample → stored content (one commit, with the relay outbox entry) → the .bf file, written after the
// commit from the content committed.
//
// The steps, and where each is enforced:
//
//   - CloseDue asks the store for due windows (store.DueWindows) and closes up to closeParallel at once,
//     under a byte budget (budget.go) so that large windows do not build side by side.
//   - CloseWindow calls store.CloseWindow with build (sample.go): decode the window's batches, order and
//     number the flows as `flowctl convert` does, encode the .bf content and the flow chunks. build
//     writes no file, so SQLite's optimistic close may run it again without touching the disk. The store
//     records the sample in state closed, its content with its SHA-256, its flows and, when the relay is
//     on, its outbox entry, all in one transaction (internal/store/windows.go).
//   - After the commit, writeFile writes <host>_<window start>[_r<n>].bf atomically (pkg/atomicfile) and
//     records the outcome (store.SetSampleFile): written, or write_failed with the error.
//
// Failures are isolated. A window that cannot be built or recorded is recorded by store.FailWindow
// (backoff, a write_failed placeholder) and skipped until its next attempt while other windows close.
// A sample whose file cannot be written stays write_failed with its content in the store; the file
// sweep writes it again with backoff while other windows close.
//
// Crash safety: a sample's content is committed before its file is written, so a crash between the two
// leaves a sample in state closed with no file. Recover, run once when the collector starts (Run),
// writes the file of every sample left closed or write_failed from its stored content (checked against
// its SHA-256) and marks it written; the file sweep does the same for failures while running. No sample
// loses its file, and no file exists without its content committed (docs/architecture.md).
package closer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/backoff"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/atomicfile"
)

// Store is what the closer needs of the store.
type Store interface {
	CountOpenWindows(ctx context.Context) (int, error)
	DueWindows(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]store.WindowRef, error)
	CloseWindow(ctx context.Context, w store.WindowRef, build func(store.WindowContent) (store.NewSample, error)) (*store.Sample, error)
	FailWindow(ctx context.Context, f store.WindowFailure) (attempts int, err error)
	ListSamples(ctx context.Context, f store.SampleFilter) ([]store.Sample, string, error)
	SampleContent(ctx context.Context, id string) ([]byte, error)
	SetSampleFile(ctx context.Context, id, writeErr string) (*store.Sample, error)
}

// Config is the closer's part of the collector's configuration.
type Config struct {
	// Dir is the sample directory the .bf files go to.
	Dir string
	// Grace: a window with no end mark closes at its end (or its last batch) + Grace.
	Grace time.Duration
	// Relay queues each new sample for the NetworkSage relay in its commit.
	Relay bool
	// Sink queues each new sample for the message-bus sink in its commit.
	Sink bool
	// Budget bounds the encoded bytes of the windows built at once (budget.go).
	Budget int64
	// Retry is the wait after a failed close or file write: CloseRetryMin doubling to CloseRetryMax.
	Retry backoff.Policy
}

// Metrics are the collector's metrics the closer moves.
type Metrics struct {
	OpenWindows    prometheus.Gauge
	StoreErrors    prometheus.Counter
	CloseFailures  prometheus.Counter
	SamplesWritten prometheus.Counter
}

// Built is what a sample was built from, as the close saw it (zero for a file written again).
type Built struct {
	Pruned  bool // the window's batches had been pruned (store.WindowContent.Pruned)
	Base    int  // the revision standing in for them (0: none was found)
	Batches int  // len(store.WindowContent.Batches), the base included
}

// Closer closes due windows into samples.
type Closer struct {
	cfg     Config
	st      Store
	log     *slog.Logger
	m       Metrics
	budget  *byteBudget
	written func(s *store.Sample, b Built) // after a sample's file is written

	mu        sync.Mutex
	sweepDue  bool      // a file write failed: sweep for files to write again
	sweepAt   time.Time // not before
	sweepFail int       // sweeps in a row that failed to write a file
	orphanAt  time.Time // the next look for orphans
}

// New makes a closer. written is called once a sample's file is written and recorded (it publishes the
// sample, notes retention and wakes the relay).
func New(st Store, cfg Config, log *slog.Logger, m Metrics, written func(s *store.Sample, b Built)) *Closer {
	return &Closer{cfg: cfg, st: st, log: log, m: m, budget: newByteBudget(cfg.Budget), written: written}
}

// closeParallel bounds the windows closed at once.
const closeParallel = 4

// CloseDue closes every window that is due, then writes again the files that failed (when their
// backoff has passed). A window whose close fails is isolated: the failure is recorded in the store
// (FailWindow: backoff, error, a write_failed placeholder sample), DueWindows skips it until its next
// attempt, and the other windows go on closing. It is logged at its first failure and when a retry
// succeeds, not at every retry.
func (c *Closer) CloseDue(ctx context.Context, now time.Time) {
	defer c.sweep(ctx, now)
	open, err := c.st.CountOpenWindows(ctx)
	if err != nil {
		c.m.StoreErrors.Inc()
		c.log.Error("counting open windows", "err", err)
	} else {
		c.m.OpenWindows.Set(float64(open))
	}
	for {
		due, err := c.st.DueWindows(ctx, now, c.cfg.Grace, 64)
		if err != nil {
			c.m.StoreErrors.Inc()
			c.log.Error("looking for windows to close", "err", err)
			return
		}
		if len(due) == 0 {
			return
		}
		// Several windows close at once: building a sample (decode, order, encode) and writing its file
		// take milliseconds, and a fleet's windows all end together.
		var wg sync.WaitGroup
		var progress atomic.Int64 // windows closed, or whose failure is recorded (so not due again now)
		sem := make(chan struct{}, closeParallel)
		for _, w := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if c.CloseWindow(ctx, w) {
					progress.Add(1)
				}
			}()
		}
		wg.Wait()
		// A full list again only if this round moved on: windows another collector holds (PostgreSQL
		// SKIP LOCKED) or failures the store could not record would come back the same.
		if len(due) < 64 || progress.Load() < int64(len(due)) {
			return
		}
	}
}

// CloseWindow closes one window; it reports whether the window is no longer due (closed, or its
// failure recorded).
func (c *Closer) CloseWindow(ctx context.Context, w store.WindowRef) bool {
	// The recorded sample is built by the last call of the callback (SQLite may build again).
	var built Built
	var attempts int
	var content []byte
	s, err := c.st.CloseWindow(ctx, w, func(wc store.WindowContent) (store.NewSample, error) {
		built = Built{Pruned: wc.Pruned, Base: wc.BaseRevision, Batches: len(wc.Batches)}
		attempts = wc.CloseAttempts
		var size int64
		for _, b := range wc.Batches {
			size += int64(len(b))
		}
		defer c.budget.acquire(size)()
		ns, err := build(wc)
		ns.Relay = c.cfg.Relay
		ns.Sink = c.cfg.Sink
		content = ns.Content
		return ns, err
	})
	if err != nil {
		c.m.CloseFailures.Inc()
		n, ferr := c.st.FailWindow(ctx, store.WindowFailure{WindowRef: w, Error: err.Error(), At: time.Now(),
			Backoff: c.cfg.Retry.Delay, Name: func(rev int) (string, string) { return SampleName(w.Host, w.WindowStart, rev) }})
		if ferr != nil {
			c.m.StoreErrors.Inc()
			c.log.Error("closing window", "host", w.Host, "window_start", w.WindowStart, "err", err)
			c.log.Error("recording a failed window close", "host", w.Host, "window_start", w.WindowStart, "err", ferr)
			return false
		}
		c.logFailure(ctx, n, w, err)
		return true
	}
	if s == nil {
		return false
	}
	c.writeFile(ctx, s, content, attempts, built)
	return true
}

// logFailure logs a failed close or file write: at error level at the window's first failure, at debug
// level after.
func (c *Closer) logFailure(ctx context.Context, attempts int, w store.WindowRef, err error) {
	level := slog.LevelDebug
	if attempts == 1 {
		level = slog.LevelError
	}
	c.log.Log(ctx, level, "window close failed; it is retried with backoff while other windows close",
		"host", w.Host, "window_start", w.WindowStart, "attempts", attempts, "retry_in", c.cfg.Retry.Delay(attempts), "err", err)
}

// writeFile writes a recorded sample's .bf from its committed content and records the outcome. failed
// counts the earlier failed attempts (closes, or writes of this file).
func (c *Closer) writeFile(ctx context.Context, s *store.Sample, content []byte, failed int, built Built) bool {
	path := filepath.Join(c.cfg.Dir, s.FileName)
	if werr := atomicfile.WriteFile(path, content, 0o644); werr != nil {
		werr = fmt.Errorf("write %s: %w", s.FileName, werr)
		c.m.CloseFailures.Inc()
		if _, err := c.st.SetSampleFile(ctx, s.ID, werr.Error()); err != nil {
			c.m.StoreErrors.Inc()
			c.log.Error("recording a failed sample write", "sample", s.ID, "err", err)
		}
		c.mu.Lock()
		if !c.sweepDue {
			c.sweepDue, c.sweepFail, c.sweepAt = true, 1, time.Now().Add(c.cfg.Retry.Delay(1))
		}
		c.mu.Unlock()
		c.logFailure(ctx, failed+1, store.WindowRef{Host: s.Host, WindowStart: s.WindowStart, WindowSeconds: s.WindowSeconds}, werr)
		return false
	}
	if x, err := c.st.SetSampleFile(ctx, s.ID, ""); err != nil {
		// The file is written; the sample stays closed until the next start (Recover) marks it.
		c.m.StoreErrors.Inc()
		c.log.Error("recording a written sample file", "sample", s.ID, "err", err)
	} else {
		s = x
	}
	if failed > 0 {
		c.log.Info("window written after failed closes", "sample", s.ID, "failed_attempts", failed)
	}
	c.m.SamplesWritten.Inc()
	c.log.Info("sample written", "sample", s.ID, "host", s.Host, "window_start", s.WindowStart,
		"revision", s.Revision, "flows", s.FlowCount, "flows_dropped", s.FlowsDropped, "file", path)
	if c.written != nil {
		c.written(s, built)
	}
	return true
}

// Orphans: a collector that dies between a commit and the file write leaves a sample closed with no
// file. Its own next start writes it (Recover); meanwhile, or when it never starts again (a fleet of
// collectors on PostgreSQL), the others write it: every orphanEvery the sweep looks for samples of the
// last orphanWindow of windows that have been closed for orphanAge, long past any write in progress.
const (
	orphanEvery  = time.Minute
	orphanAge    = time.Minute
	orphanWindow = 24 * time.Hour
)

// sweep writes again the files that failed, once their backoff has passed, and the files of orphans.
func (c *Closer) sweep(ctx context.Context, now time.Time) {
	c.mu.Lock()
	retry := c.sweepDue && !now.Before(c.sweepAt)
	orphans := !retry && !now.Before(c.orphanAt)
	if orphans {
		c.orphanAt = now.Add(orphanEvery)
	}
	c.mu.Unlock()
	switch {
	case orphans:
		if _, err := c.writeMissing(ctx, []store.SampleState{store.StateClosed}, now.Add(-orphanWindow), now.Add(-orphanAge)); err != nil {
			c.log.Error("looking for samples whose file was not written", "err", err)
		}
		return
	case !retry:
		return
	}
	ok, err := c.writeMissing(ctx, []store.SampleState{store.StateClosed, store.StateWriteFailed}, time.Time{}, time.Time{})
	if err != nil {
		c.log.Error("writing sample files again", "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok && err == nil {
		c.sweepDue, c.sweepFail = false, 0
		return
	}
	c.sweepFail++
	c.sweepAt = time.Now().Add(c.cfg.Retry.Delay(c.sweepFail))
}

// Recover writes the file of every sample whose content was committed but whose file was not written
// (a crash in between, or a failed write): samples in state closed or write_failed that have content.
// The collector runs it once before it closes windows; what fails again is retried with backoff.
func (c *Closer) Recover(ctx context.Context) error {
	ok, err := c.writeMissing(ctx, []store.SampleState{store.StateClosed, store.StateWriteFailed}, time.Time{}, time.Time{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.orphanAt = time.Now().Add(orphanEvery)
	if !ok || err != nil {
		c.sweepDue, c.sweepFail, c.sweepAt = true, 1, time.Now().Add(c.cfg.Retry.Delay(1))
	}
	return err
}

// writeMissing writes the files of the samples in the given states (of windows since since, when set;
// last updated before updatedBefore, when set); ok is false when a write failed.
func (c *Closer) writeMissing(ctx context.Context, states []store.SampleState, since, updatedBefore time.Time) (ok bool, err error) {
	ok = true
	for _, state := range states {
		token := ""
		for {
			page, next, err := c.st.ListSamples(ctx, store.SampleFilter{State: state, Since: since, PageSize: store.MaxPageSize, PageToken: token})
			if err != nil {
				c.m.StoreErrors.Inc()
				return false, fmt.Errorf("closer: samples to write: %w", err)
			}
			for i := range page {
				s := &page[i]
				if !updatedBefore.IsZero() && !s.Updated.Before(updatedBefore) {
					continue // perhaps being written right now
				}
				content, err := c.st.SampleContent(ctx, s.ID)
				if errors.Is(err, store.ErrNotFound) {
					continue // a failed close's placeholder: its window is retried (FailWindow)
				}
				if err != nil {
					c.m.StoreErrors.Inc()
					c.log.Error("reading a sample to write its file", "sample", s.ID, "err", err)
					ok = false
					continue
				}
				failed := 0
				if s.State == store.StateWriteFailed {
					failed = 1
				}
				if !c.writeFile(ctx, s, content, failed, Built{}) {
					ok = false
				}
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	return ok, nil
}
