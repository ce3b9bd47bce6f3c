package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Version is the collector's software version, reported to sensors in Welcome.
var Version = "0.1.0"

// Config is the collector's configuration.
type Config struct {
	// DataDir is where sample files are written (DataDir/samples/<host>_<start>.bf).
	DataDir string
	// Window is the window length every sensor must use (default 300 s).
	Window time.Duration
	// Grace is how long after a window's end (or its last late batch) a window with no end mark closes
	// (default 60 s).
	Grace time.Duration
	// TrustDomain is the SPIFFE trust domain of certificates (default flowfleet.local).
	TrustDomain string
	// Name identifies this collector in the hosts table (default: the machine's host name).
	Name string
	// CommitDelay bounds how long a batch waits for others to share its transaction (default 2 ms).
	CommitDelay time.Duration
	// CloseInterval is how often due windows are looked for (default 1 s).
	CloseInterval time.Duration
	// MaxStreams bounds concurrent gRPC streams per connection (default 4096).
	MaxStreams uint32
	// HandshakeTimeout is how long a new connection may take to finish its TLS handshake (and HTTP/2
	// preface) before it is closed (default 10 s; conns.go).
	HandshakeTimeout time.Duration
	// MaxConnections bounds the gRPC listener's open connections (LimitListener); default 10,000, or
	// the open-file limit less a reserve for the store when that is lower.
	MaxConnections int
	// Relay configures the NetworkSage relay (relay.go); with no API key it is off.
	Relay relay.Config
	// Retention: the samples of windows that ended longer ago than this are deleted (store rows and
	// .bf files, every revision). 0 keeps them forever.
	Retention time.Duration
	// BatchRetention: the raw batches of closed windows that ended (and got their last batch) longer
	// ago than this are deleted; a late batch then builds on the window's sample. 0 keeps them until
	// the window's samples go. At most Retention when both are set.
	BatchRetention time.Duration
	// PruneInterval is how often the pruner runs (default: a tenth of the shorter retention, between
	// 10 s and 1 h); it also runs once at start.
	PruneInterval time.Duration
	// PruneMaxWindows and PruneMaxFlows bound one pruning transaction (store defaults when 0).
	PruneMaxWindows int
	PruneMaxFlows   int64
	// Now is the retention clock (tests); default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Window == 0 {
		c.Window = 300 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 60 * time.Second
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "flowfleet.local"
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.CommitDelay == 0 {
		c.CommitDelay = 2 * time.Millisecond
	}
	if c.CloseInterval == 0 {
		c.CloseInterval = time.Second
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 4096
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections()
	}
}

// Collector holds the collector's services and background work.
type Collector struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	metrics *metrics
	commits chan *commitReq
	events  *hub
	streams *streamSet
	relay   *relay.Worker // nil when the relay is off
	health  *healthState  // readiness (health.go)
	conns   *connGuard    // connection limits (conns.go)

	draining    chan struct{} // closed by Drain: streams end and sensors reconnect elsewhere
	drainOnce   sync.Once
	stopCommits chan struct{} // closed when Run ends
}

// New checks the configuration and prepares the data directory.
func New(st store.Store, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Collector, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("collector: no data directory")
	}
	if cfg.HandshakeTimeout < 0 || cfg.MaxConnections < 0 {
		return nil, errors.New("collector: negative handshake timeout or connection limit")
	}
	if cfg.Window < 10*time.Second || cfg.Window > 24*time.Hour || cfg.Window%time.Second != 0 {
		return nil, fmt.Errorf("collector: window %s must be whole seconds between 10s and 24h", cfg.Window)
	}
	if err := cfg.checkRetention(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("collector: data directory: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".probe*")
	if err != nil {
		return nil, fmt.Errorf("collector: data directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	if log == nil {
		log = slog.Default()
	}
	hs := &healthState{}
	m := newMetrics(reg)
	c := &Collector{
		cfg: cfg, store: commitWatch{Store: st, h: hs}, log: log, metrics: m,
		commits: make(chan *commitReq, 4096), events: newHub(), streams: newStreamSet(),
		draining: make(chan struct{}), stopCommits: make(chan struct{}),
		health: hs, conns: newConnGuard(log, m, cfg.MaxConnections),
	}
	if err := c.newRelay(reg); err != nil {
		return nil, err
	}
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
	if c.retentionOn() {
		g.Go(func() error {
			c.pruneLoop(gctx)
			return nil
		})
	}
	g.Go(func() error {
		defer close(c.stopCommits)
		t := time.NewTicker(c.cfg.CloseInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-t.C:
				c.closeDue(context.WithoutCancel(gctx), now)
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

// closeParallel bounds the windows closed at once.
const closeParallel = 4

// closeDue closes every window that is due.
func (c *Collector) closeDue(ctx context.Context, now time.Time) {
	for {
		due, err := c.store.DueWindows(ctx, now, c.cfg.Grace, 64)
		if err != nil {
			c.metrics.storeErrors.Inc()
			c.log.Error("looking for windows to close", "err", err)
			return
		}
		open, _ := c.store.CountOpenWindows(ctx)
		c.metrics.openWindows.Set(float64(open))
		if len(due) == 0 {
			return
		}
		// Several windows close at once: building a sample (decode, order, encode, write and sync its file)
		// takes milliseconds, and a fleet's windows all end together.
		var wg sync.WaitGroup
		var failed atomic.Bool
		sem := make(chan struct{}, closeParallel)
		for _, w := range due {
			if failed.Load() {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				// The recorded sample is built by the last call of the callback (SQLite may build again).
				var built builtFrom
				s, err := c.store.CloseWindow(ctx, w, func(wc store.WindowContent) (store.NewSample, error) {
					built = builtFrom{pruned: wc.Pruned, base: wc.BaseRevision, batches: len(wc.Batches)}
					return c.buildSampleForStore(wc)
				})
				if err != nil {
					c.metrics.storeErrors.Inc()
					c.log.Error("closing window", "host", w.Host, "window_start", w.WindowStart, "err", err)
					failed.Store(true)
					return
				}
				if s == nil {
					return
				}
				c.metrics.samplesWritten.Inc()
				c.log.Info("sample written", "sample", s.ID, "host", s.Host, "window_start", s.WindowStart,
					"revision", s.Revision, "flows", s.FlowCount, "file", filepath.Join(c.SampleDir(), s.FileName))
				c.noteRetention(s, built)
				c.events.publish(*s, "") // a new sample (or revision): no previous state
				c.notifyRelay()
			}()
		}
		wg.Wait()
		if failed.Load() || len(due) < 64 {
			return
		}
	}
}
