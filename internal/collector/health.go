package collector

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Readiness (issue #14, item 12): the collector is ready when it can store what sensors send. A store
// that answers a ping may still refuse every write (a full disk refused 202 batches in 40 s while
// health said SERVING), so every probe interval the health loop checks, in order:
//
//  1. the store takes a write: CheckWritable commits one row (this collector's row of health_probe);
//  2. the samples directory takes a file: a 1-byte file is created, written, synced and removed;
//  3. batch commits are not failing: the last SaveBatches failed less than commitFailHold ago and none
//     succeeded since. This catches what 1 and 2 miss: on a nearly full disk a one-row transaction
//     (which SQLite writes into WAL space it already has) or a one-byte file can still fit when a
//     batch of thousands of flows does not.
//
// The outcome sets the gRPC health status of the server and of each service (SERVING or NOT_SERVING)
// and answers GET /readyz on the metrics listener (200, or 503 with a one-line reason), which is what a
// Kubernetes probe can use: it cannot present a client certificate to the gRPC health service.
// /readyz reports the last probe's result and never runs a probe itself, so HTTP clients cannot make
// the collector write; a result older than the probe timeout plus two intervals counts as not ready
// (a probe stuck on a store that does not answer). GET /healthz answers 200 while the process serves
// HTTP: it is for liveness, and says nothing of the store, so a store outage does not restart the
// collector.

// commitFailHold is how long a failed batch commit keeps the collector not ready when no commit
// succeeds after it. Sensors retry within seconds, so a store that still fails keeps failing them.
const commitFailHold = 30 * time.Second

// probeTimeout bounds one readiness probe: a SQLite probe queues behind batch commits and window
// closes, which take up to a few hundred milliseconds each under load.
const probeTimeout = 10 * time.Second

// maxReason bounds the reason text /readyz and the log line give.
const maxReason = 300

// healthState is the last readiness probe's outcome, and the batch commits' recent outcomes.
type healthState struct {
	mu         sync.Mutex
	probed     time.Time // when the last probe finished (zero: none yet)
	ready      bool
	reason     string // why not ready
	stopping   bool
	commitOK   time.Time
	commitFail time.Time
	commitErr  string
	interval   time.Duration
}

// noteCommit records a batch commit's outcome.
func (h *healthState) noteCommit(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.commitOK = now
		return
	}
	h.commitFail, h.commitErr = now, err.Error()
}

// commitsFailing reports the last commit's error when commits are failing (see commitFailHold).
func (h *healthState) commitsFailing(now time.Time) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.commitFail.After(h.commitOK) && now.Sub(h.commitFail) < commitFailHold {
		return h.commitErr, true
	}
	return "", false
}

func (h *healthState) set(ready bool, reason string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ready, h.reason, h.probed = ready, reason, now
}

// status is the readiness /readyz reports now.
func (h *healthState) status(now time.Time) (ready bool, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.stopping:
		return false, "shutting down"
	case h.probed.IsZero():
		return false, "starting: no readiness probe has finished yet"
	case now.Sub(h.probed) > probeTimeout+2*h.interval:
		return false, fmt.Sprintf("the readiness probe has not finished for %s (store not answering?)", now.Sub(h.probed).Round(time.Second))
	}
	return h.ready, h.reason
}

// commitWatch is the store as the collector uses it, with batch commits' outcomes recorded for the
// readiness probe (ingest.go's commit loop calls SaveBatches, and stays unaware of health).
type commitWatch struct {
	store.Store
	h *healthState
}

func (w commitWatch) SaveBatches(ctx context.Context, batches []store.Batch) ([]store.Outcome, error) {
	out, err := w.Store.SaveBatches(ctx, batches)
	w.h.noteCommit(err, time.Now())
	return out, err
}

// The reasons a readiness probe fails (flowfleet_collector_readiness_failures_total label values).
const (
	probeStore   = "store_write"
	probeSamples = "samples_dir"
	probeCommits = "commits"
)

// probe runs one readiness probe; it returns the failed check's label and a reason, or "" when ready.
func (c *Collector) probe(ctx context.Context) (check, reason string) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := c.store.CheckWritable(pctx, c.cfg.Name); err != nil {
		return probeStore, "store cannot write: " + err.Error()
	}
	if err := probeDir(c.SampleDir()); err != nil {
		return probeSamples, "samples directory cannot write: " + err.Error()
	}
	if msg, failing := c.health.commitsFailing(time.Now()); failing {
		return probeCommits, "batch commits are failing: " + msg
	}
	return "", ""
}

// probeDir creates, writes, syncs and removes a 1-byte file in dir.
func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".probe*") // the name removeOrphanTemps removes after a kill
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte{'\n'})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WatchHealth probes readiness at once and then every interval until ctx is done, and sets the gRPC
// health status of the server and each service from it (hs may be nil); see the comment at the top of
// this file. When ctx is done everything is set NOT_SERVING: the collector is shutting down.
func (c *Collector) WatchHealth(ctx context.Context, hs *health.Server, interval time.Duration) {
	services := []string{"", flowfleetv1.IngestService_ServiceDesc.ServiceName,
		flowfleetv1.SampleService_ServiceDesc.ServiceName, flowfleetv1.FleetService_ServiceDesc.ServiceName}
	set := func(st healthpb.HealthCheckResponse_ServingStatus) {
		if hs == nil {
			return
		}
		for _, s := range services {
			hs.SetServingStatus(s, st)
		}
	}
	c.health.mu.Lock()
	c.health.interval = interval
	c.health.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	lastReady, first := false, true
	for {
		check, reason := c.probe(ctx)
		if ctx.Err() != nil {
			break
		}
		ready := check == ""
		reason = truncateReason(reason)
		c.health.set(ready, reason, time.Now())
		if ready {
			c.metrics.ready.Set(1)
			set(healthpb.HealthCheckResponse_SERVING)
		} else {
			c.metrics.ready.Set(0)
			c.metrics.readinessFailures.WithLabelValues(check).Inc()
			set(healthpb.HealthCheckResponse_NOT_SERVING)
		}
		switch {
		case !ready && (lastReady || first):
			c.log.Warn("not ready: health NOT_SERVING until the store can write again", "check", check, "reason", reason)
		case ready && !lastReady && !first:
			c.log.Info("ready again: health SERVING")
		}
		lastReady, first = ready, false
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	c.health.mu.Lock()
	c.health.stopping = true
	c.health.mu.Unlock()
	c.metrics.ready.Set(0)
	set(healthpb.HealthCheckResponse_NOT_SERVING)
}

func truncateReason(s string) string {
	if len(s) > maxReason {
		return s[:maxReason] + "…"
	}
	return s
}

// HealthHandler serves GET /healthz (200 "ok": the process is alive) and GET /readyz (200 "ready", or
// 503 with the reason: see WatchHealth) in plain text, for probes that cannot do mTLS gRPC.
func (c *Collector) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ready, reason := c.health.status(time.Now())
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + reason + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
