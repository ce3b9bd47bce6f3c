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

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
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

	// Ingest limits (docs/limits.md, section Ingest).
	//
	// MaxStreamsPerHost bounds the ingest streams one host (certificate) may hold open on this
	// collector at once (default 4): a sensor needs one, plus one while a lost connection is detected.
	MaxStreamsPerHost int
	// OneStreamPerHost refuses a host's stream while another with a different stream id is open
	// (FAILED_PRECONDITION): two sensors sharing one certificate. Off by default: such streams are
	// counted (flowfleet_collector_host_stream_conflicts_total) and logged.
	OneStreamPerHost bool
	// IdleTimeout closes an ingest stream that sends no message for this long (UNAVAILABLE; the sensor
	// reconnects). Default: the longer of 15 minutes and 2 windows + grace, because a sensor with
	// traffic sends at least one batch per window and one that sees none sends nothing.
	IdleTimeout time.Duration
	// HelloTimeout closes a stream whose hello does not come within it (default 30 s).
	HelloTimeout time.Duration
	// MaxFlowAge and MaxFlowAhead are the skew window around the collector's clock that flow times
	// (first_seen, last_seen, window_start) and window-end times must fall into; a batch outside it is
	// refused with INVALID_ARGUMENT naming the field. Defaults 30 days and 1 hour; negative means
	// unbounded on that side.
	MaxFlowAge   time.Duration
	MaxFlowAhead time.Duration
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
	if c.MaxStreamsPerHost <= 0 {
		c.MaxStreamsPerHost = DefaultMaxStreamsPerHost
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = max(DefaultMinIdleTimeout, 2*c.Window+c.Grace)
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.MaxFlowAge == 0 {
		c.MaxFlowAge = DefaultMaxFlowAge
	}
	if c.MaxFlowAhead == 0 {
		c.MaxFlowAhead = DefaultMaxFlowAhead
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

	logLimit *logLimiter                               // rate-limits ingest refusal logs
	encode   func([]*flowfleetv1.Flow) ([]byte, error) // encodes a batch part; nil means flowpb.Encode (tests fail it)

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
	c := &Collector{
		cfg: cfg, store: st, log: log, metrics: newMetrics(reg),
		commits: make(chan *commitReq, 4096), events: newHub(), streams: newStreamSet(), logLimit: newLogLimiter(logEvery),
		draining: make(chan struct{}), stopCommits: make(chan struct{}),
	}
	if err := c.newRelay(reg); err != nil {
		return nil, err
	}
	c.logRetention()
	return c, nil
}

// SampleDir is where sample files are written.
func (c *Collector) SampleDir() string { return filepath.Join(c.cfg.DataDir, "samples") }

// Run commits batches and closes windows until ctx is done. Batches already received are committed
// before it returns.
func (c *Collector) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.commitLoop()
	}()
	relayStopped := c.startRelay(ctx)
	prunerStopped := c.startPruner(ctx)
	t := time.NewTicker(c.cfg.CloseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			close(c.stopCommits)
			<-done
			relayStopped()
			prunerStopped()
			return nil
		case now := <-t.C:
			c.closeDue(context.WithoutCancel(ctx), now)
		}
	}
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
