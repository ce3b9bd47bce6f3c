package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Retention (docs/retention.md): a pruner deletes the samples of windows older than Config.Retention
// (store rows and .bf files) and the raw batches of closed windows older than Config.BatchRetention,
// once at start and then every PruneInterval, in bounded store transactions. The dedup marks are never
// pruned.

// checkRetention validates the retention settings and fills in the pruning interval.
func (c *Config) checkRetention() error {
	switch {
	case c.Retention < 0:
		return fmt.Errorf("collector: retention %s is negative (0 keeps samples forever)", c.Retention)
	case c.BatchRetention < 0:
		return fmt.Errorf("collector: batch retention %s is negative (0 keeps batches until the samples go)", c.BatchRetention)
	case c.Retention > 0 && c.Retention < c.Window+c.Grace:
		return fmt.Errorf("collector: retention %s is shorter than a window and its grace (%s): samples would go as they are written",
			c.Retention, c.Window+c.Grace)
	case c.Retention > 0 && c.BatchRetention > c.Retention:
		return fmt.Errorf("collector: batch retention %s is longer than retention %s: --batch-retention must be at most --retention",
			c.BatchRetention, c.Retention)
	case c.PruneInterval < 0:
		return fmt.Errorf("collector: prune interval %s is negative", c.PruneInterval)
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = pruneInterval(c.Retention, c.BatchRetention)
	}
	return nil
}

// pruneInterval is a tenth of the shorter retention, between 10 s and an hour.
func pruneInterval(retention, batchRetention time.Duration) time.Duration {
	d := retention
	if batchRetention > 0 && (d == 0 || batchRetention < d) {
		d = batchRetention
	}
	if d == 0 {
		return time.Hour // retention is off: the pruner does not run
	}
	return min(max(d/10, 10*time.Second), time.Hour)
}

func (c *Collector) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

func (c *Collector) retentionOn() bool { return c.cfg.Retention > 0 || c.cfg.BatchRetention > 0 }

// logRetention says once at start what is kept.
func (c *Collector) logRetention() {
	if !c.retentionOn() {
		c.log.Info("retention off: samples and batches are kept forever (set --retention and --batch-retention)")
		return
	}
	keep := func(d time.Duration) string {
		if d == 0 {
			return "forever"
		}
		return d.String()
	}
	batches := keep(c.cfg.BatchRetention)
	if c.cfg.BatchRetention == 0 && c.cfg.Retention > 0 {
		batches = "until their samples go"
	}
	c.log.Info("retention on", "samples", keep(c.cfg.Retention), "batches_of_closed_windows", batches,
		"prune_every", c.cfg.PruneInterval)
}

// pruneLoop prunes once at start and then every PruneInterval, until ctx is done.
func (c *Collector) pruneLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.PruneInterval)
	defer t.Stop()
	for {
		_, _ = c.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneReport is what one pruning pass deleted.
type pruneReport struct {
	Windows   int   // windows past the retention deleted
	Samples   int   // their samples (every revision)
	Unrelayed int   // samples deleted while still queued for the relay
	Files     int   // .bf files removed (the deleted samples', and older ones whose rows are gone)
	Pruned    int   // closed windows whose batches were pruned
	Batches   int64 // batch rows deleted (of pruned windows, and of windows deleted)
}

func (r pruneReport) attrs() []any {
	return []any{"samples_deleted", r.Samples, "windows_deleted", r.Windows, "files_removed", r.Files,
		"windows_batches_pruned", r.Pruned, "batches_deleted", r.Batches}
}

func (r pruneReport) empty() bool {
	return r.Windows == 0 && r.Samples == 0 && r.Files == 0 && r.Pruned == 0 && r.Batches == 0
}

// prune runs one pruning pass: samples past Retention, then batches past BatchRetention, each in
// bounded store calls until nothing is left. It stops early when ctx ends.
func (c *Collector) prune(ctx context.Context) (pruneReport, error) {
	var rep pruneReport
	now, began := c.now(), time.Now()
	err := c.pruneSamples(ctx, now, &rep)
	if err == nil {
		err = c.pruneBatches(ctx, now, &rep)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		c.metrics.pruneRuns.WithLabelValues("canceled").Inc()
		c.log.Info("pruning stopped: shutting down", rep.attrs()...)
		return rep, err
	case err != nil:
		c.metrics.pruneRuns.WithLabelValues("failed").Inc()
		c.metrics.storeErrors.Inc()
		c.log.Error("pruning failed; trying again at the next pass", append([]any{"err", err}, rep.attrs()...)...)
		return rep, err
	}
	c.metrics.pruneRuns.WithLabelValues("ok").Inc()
	attrs := append(rep.attrs(), "took", time.Since(began).Round(time.Millisecond))
	if c.cfg.Retention > 0 {
		attrs = append(attrs, "samples_cutoff", now.Add(-c.cfg.Retention).UTC())
	}
	if c.cfg.BatchRetention > 0 {
		attrs = append(attrs, "batches_cutoff", now.Add(-c.cfg.BatchRetention).UTC())
	}
	if st, err := c.store.RetentionStats(ctx); err == nil {
		if st.OldestSample.IsZero() {
			c.metrics.oldestSample.Set(0)
		} else {
			c.metrics.oldestSample.Set(float64(st.OldestSample.Unix()))
			attrs = append(attrs, "oldest_sample_kept", st.OldestSample)
		}
		if !st.BatchesKeptSince.IsZero() {
			attrs = append(attrs, "oldest_batches_kept", st.BatchesKeptSince)
		}
	}
	if rep.empty() {
		c.log.Debug("pruned: nothing was due", attrs...)
	} else {
		c.log.Info("pruned", attrs...)
	}
	if rep.Unrelayed > 0 {
		c.log.Warn("pruned samples that were still waiting for the NetworkSage relay: they will not be uploaded",
			"samples", rep.Unrelayed)
	}
	return rep, nil
}

func (c *Collector) pruneSamples(ctx context.Context, now time.Time, rep *pruneReport) error {
	if c.cfg.Retention <= 0 {
		return nil
	}
	req := store.PruneRequest{Before: now.Add(-c.cfg.Retention), Now: now, MaxWindows: c.cfg.PruneMaxWindows,
		MaxFlows: c.cfg.PruneMaxFlows}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := c.store.PruneSamples(ctx, req)
		if err != nil {
			return err
		}
		rep.Windows += res.Windows
		rep.Samples += len(res.Samples)
		rep.Unrelayed += res.Unrelayed
		rep.Batches += res.Batches
		c.metrics.prunedWindows.Add(float64(res.Windows))
		c.metrics.prunedSamples.Add(float64(len(res.Samples)))
		c.metrics.prunedBatches.Add(float64(res.Batches))
		// The rows are gone first: a file whose row is gone is found again by the sweep below, while a
		// row without its file would still be served (the content is in the store).
		for _, x := range res.Samples {
			if c.removeSampleFile(x.FileName) {
				rep.Files++
			}
		}
		if res.Windows == 0 && len(res.Samples) == 0 {
			break
		}
	}
	n, err := c.sweepSampleFiles(ctx, req.Before)
	rep.Files += n
	return err
}

func (c *Collector) pruneBatches(ctx context.Context, now time.Time, rep *pruneReport) error {
	if c.cfg.BatchRetention <= 0 {
		return nil
	}
	req := store.PruneRequest{Before: now.Add(-c.cfg.BatchRetention), Now: now, MaxWindows: c.cfg.PruneMaxWindows,
		MaxFlows: c.cfg.PruneMaxFlows}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := c.store.PruneBatches(ctx, req)
		if err != nil {
			return err
		}
		rep.Pruned += res.Windows
		rep.Batches += res.Batches
		c.metrics.prunedBatches.Add(float64(res.Batches))
		if res.Windows == 0 {
			return nil
		}
	}
}

// removeSampleFile removes a sample's file from this collector's sample directory; it reports whether
// there was one. (With several collectors, each wrote the files of the windows it closed: the others'
// are removed by their own sweeps.)
func (c *Collector) removeSampleFile(name string) bool {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		c.log.Warn("not removing a sample file with an unexpected name", "file", name)
		return false
	}
	err := os.Remove(filepath.Join(c.SampleDir(), name))
	switch {
	case err == nil:
		c.metrics.prunedFiles.Inc()
		return true
	case errors.Is(err, fs.ErrNotExist):
	default:
		c.log.Warn("removing a pruned sample's file", "file", name, "err", err)
	}
	return false
}

// sweepSampleFiles removes the .bf files of the sample directory whose window ended at or before
// cutoff and whose sample is no longer in the store: the files of samples another collector pruned
// (each collector writes the files of the windows it closes), and of samples whose row went while the
// file stayed (a crash between the two). The directory is read in chunks, so its size does not matter.
func (c *Collector) sweepSampleFiles(ctx context.Context, cutoff time.Time) (int, error) {
	dir, err := os.Open(c.SampleDir())
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	window := int64(c.cfg.Window / time.Second)
	removed := 0
	for {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		entries, err := dir.ReadDir(1024)
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
				continue
			}
			start, ok := sampleFileWindow(name)
			if !ok || time.Unix(start+window, 0).After(cutoff) {
				continue
			}
			kept, err := c.sampleFileKept(ctx, name)
			if err != nil {
				return removed, err
			}
			if kept {
				continue // its row is still there: it goes with it
			}
			if c.removeSampleFile(name) {
				removed++
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(entries) == 0) {
			return removed, nil
		}
		if err != nil {
			return removed, err
		}
	}
}

// sampleFileKept reports whether the store still has the sample whose file is name: the sample whose id
// is the name without ".bf", or, for a shortened name (SampleName: the host part holds "~"), the sample
// recorded with that file name. Shortened names are rare (hosts of more than about 180 characters), so
// their look-up by file name, which no index serves, is too.
func (c *Collector) sampleFileKept(ctx context.Context, name string) (bool, error) {
	if strings.Contains(name, "~") {
		got, _, err := c.store.ListSamples(ctx, store.SampleFilter{FileName: name, PageSize: 1})
		return len(got) > 0, err
	}
	_, err := c.store.GetSample(ctx, strings.TrimSuffix(name, ".bf"))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// sampleFileWindow reads the window start from a sample file name, <host>_<start>[_r<revision>].bf
// (SampleName).
func sampleFileWindow(name string) (int64, bool) {
	base, ok := strings.CutSuffix(name, ".bf")
	if !ok {
		return 0, false
	}
	head, last, ok := cutLast(base)
	if !ok {
		return 0, false
	}
	if rev, isRev := strings.CutPrefix(last, "r"); isRev {
		if n, err := strconv.Atoi(rev); err == nil && n > 1 {
			if head, last, ok = cutLast(head); !ok {
				return 0, false
			}
		}
	}
	if head == "" {
		return 0, false
	}
	start, err := strconv.ParseInt(last, 10, 64)
	if err != nil || start < 0 {
		return 0, false
	}
	return start, true
}

// cutLast splits s at its last '_'.
func cutLast(s string) (head, last string, ok bool) {
	i := strings.LastIndexByte(s, '_')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// noteRetention counts and logs a revision made after the window's batches were pruned (a late batch
// that came after --batch-retention), and warns about a sample already past --retention.
func (c *Collector) noteRetention(s *store.Sample, b closer.Built) {
	if b.Pruned {
		late := b.Batches
		if b.Base > 0 {
			late--
			c.metrics.revisionsAfterPrune.WithLabelValues("pruned_revision").Inc()
			c.log.Info("late batch for a window whose batches were pruned: the new revision is the revision they were pruned at plus the late flows",
				"sample", s.ID, "host", s.Host, "window_start", s.WindowStart, "revision", s.Revision,
				"base_revision", b.Base, "late_batches", late, "flows", s.FlowCount)
		} else {
			c.metrics.revisionsAfterPrune.WithLabelValues("missing").Inc()
			c.log.Warn("late batch for a window whose batches were pruned and whose earlier sample is gone: the new revision holds only the late flows",
				"sample", s.ID, "host", s.Host, "window_start", s.WindowStart, "revision", s.Revision,
				"late_batches", late, "flows", s.FlowCount)
		}
	}
	if c.cfg.Retention > 0 && !time.Unix(s.WindowStart+int64(s.WindowSeconds), 0).After(c.now().Add(-c.cfg.Retention)) {
		c.log.Warn("sample written for a window older than --retention: it goes at the next pruning pass",
			"sample", s.ID, "host", s.Host, "window_start", s.WindowStart, "retention", c.cfg.Retention)
	}
}
