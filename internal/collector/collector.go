package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/backoff"
	"github.com/flowfleet/flowfleet/internal/buildinfo"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/sink"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Version is the collector's software version, reported to sensors in Welcome (buildinfo.Version).
var Version = buildinfo.Version()

// Collector holds the collector's services and background work.
type Collector struct {
	cfg Config
	// store is the whole store, for what holds no narrower view: the readiness probe (health.go), the
	// pruner (retention.go) and the relay worker. The stages below hold only what they use.
	store   store.Store
	saver   batchSaver     // the commit loop (ingest.go)
	closer  *closer.Closer // due windows → samples → .bf files (internal/collector/closer)
	log     *slog.Logger
	metrics *metrics
	commits chan *commitReq
	events  *hub
	streams *streamSet
	relay   *relay.Worker // nil when the relay is off
	sink    *sink.Worker  // nil when the sink is off (sink.go)
	health  *healthState  // readiness (health.go)
	conns   *connGuard    // connection limits (conns.go)

	logLimit *logx.Limiter                                    // rate-limits ingest refusal logs
	encode   func([]*flowfleetv1.Flow) ([]byte, []int, error) // encodes a batch part; nil means flowpb.EncodeEnds (tests fail it)

	draining    chan struct{} // closed by Drain: streams end and sensors reconnect elsewhere
	drainOnce   sync.Once
	stopCommits chan struct{} // closed when Run ends
}

// New checks the configuration and prepares the data directory.
func New(st store.Store, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Collector, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("collector: data directory: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	removed, err := removeOrphanTemps(dir)
	if err != nil {
		return nil, fmt.Errorf("collector: data directory %s: %w", dir, err)
	}
	if removed > 0 {
		log.Info("removed temporary files a previous run left in the sample directory", "dir", dir, "files", removed)
	}
	probe, err := os.CreateTemp(dir, ".probe*")
	if err != nil {
		return nil, fmt.Errorf("collector: data directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	hs := &healthState{}
	m := newMetrics(reg)
	watched := commitWatch{Store: st, h: hs}
	c := &Collector{
		cfg: cfg, store: watched, saver: watched, log: log, metrics: m,
		commits: make(chan *commitReq, 4096), events: newHub(), streams: newStreamSet(), logLimit: logx.NewLimiter(logEvery),
		draining: make(chan struct{}), stopCommits: make(chan struct{}),
		health: hs, conns: newConnGuard(log, m, cfg.Listener.MaxConnections),
	}
	if err := c.newRelay(reg); err != nil {
		return nil, err
	}
	if err := c.newSink(reg); err != nil {
		return nil, err
	}
	c.closer = closer.New(watched, c.closerConfig(), log, closer.Metrics{OpenWindows: m.openWindows,
		StoreErrors: m.storeErrors, CloseFailures: m.closeFailures, SamplesWritten: m.samplesWritten}, c.sampleWritten)
	c.logRetention()
	return c, nil
}

// SampleDir is where sample files are written.
func (c *Collector) SampleDir() string { return filepath.Join(c.cfg.DataDir, "samples") }

// Run commits batches, closes windows, and runs the relay and the pruner (when on) until ctx is done
// or one of them fails; it waits for all of them and returns the first failure (nil after ctx is done).
// Batches already received are committed before it returns: the commit loop stops last, after the
// window closer.
func (c *Collector) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		c.commitLoop() // until stopCommits is closed, then commits what is queued
		return nil
	})
	if c.relay != nil {
		g.Go(func() error {
			if err := c.relay.Run(gctx); err != nil {
				return fmt.Errorf("collector: relay: %w", err)
			}
			return nil
		})
	}
	if c.sink != nil {
		g.Go(func() error {
			if err := c.sink.Run(gctx); err != nil {
				return fmt.Errorf("collector: sink: %w", err)
			}
			return nil
		})
	}
	if c.retentionOn() {
		g.Go(func() error {
			c.pruneLoop(gctx)
			return nil
		})
	}
	g.Go(func() error {
		defer close(c.stopCommits)
		if err := c.closer.Recover(context.WithoutCancel(gctx)); err != nil {
			c.log.Error("writing the files of samples a previous run committed but did not write; retried with backoff", "err", err)
		}
		t := time.NewTicker(c.cfg.CloseInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-t.C:
				c.closer.CloseDue(context.WithoutCancel(gctx), now)
			}
		}
	})
	return g.Wait()
}

// Drain ends every ingest stream (sensors see Unavailable and reconnect, to another collector if they
// have one); batches already received are still committed and acknowledged. Call it before stopping the
// gRPC server.
func (c *Collector) Drain() {
	c.drainOnce.Do(func() { close(c.draining) })
}

// removeOrphanTemps removes the temporary files of atomic writes (".<name>.bf.tmp<digits>") and of
// the writability probe (".probe<digits>") that a killed collector left in its sample directory; it
// returns how many it removed. A sample directory belongs to one collector, which calls this before it
// writes anything, so no file removed here is being written.
func removeOrphanTemps(dir string) (int, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	removed := 0
	for {
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			if e.Type().IsRegular() && isOrphanTemp(e.Name()) {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return removed, err
				}
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

// isOrphanTemp reports a temporary file name of atomicfile.WriteFile (".x.bf.tmp123") or of New's probe
// (".probe123").
func isOrphanTemp(name string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	var digits string
	if i := strings.LastIndex(name, ".bf.tmp"); i > 1 {
		digits = name[i+len(".bf.tmp"):]
	} else if rest, ok := strings.CutPrefix(name, ".probe"); ok {
		digits = rest
	} else {
		return false
	}
	if digits == "" {
		return false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// closerConfig is the window closer's part of the configuration.
func (c *Collector) closerConfig() closer.Config {
	budget := c.cfg.MaxWindowBytes
	if budget <= 0 {
		budget = DefaultMaxWindowBytes
	}
	return closer.Config{Dir: c.SampleDir(), Grace: c.cfg.Grace, Relay: c.relay != nil, Sink: c.sink != nil, Budget: budget,
		Retry: backoff.Policy{Base: c.cfg.CloseRetryMin, Max: c.cfg.CloseRetryMax}}
}

// sampleWritten is called once a new sample's file is written: retention notes, the watchers, the relay
// and the sink.
func (c *Collector) sampleWritten(s *store.Sample, b closer.Built) {
	c.noteRetention(s, b)
	c.events.publish(*s, "") // a new sample (or revision): no previous state
	c.notifyRelay()
	c.notifySink()
}
