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
	"github.com/flowfleet/flowfleet/internal/store"
)

// Version is the collector's software version, reported to sensors in Welcome (buildinfo.Version).
var Version = buildinfo.Version()

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
	// MaxWindowFlows and MaxWindowBytes bound one window (one host's flows of one window, every
	// revision): flows past either bound are dropped, counted (flowfleet_collector_window_flows_dropped_total,
	// the sample's flows_dropped) and logged once per window; their batch is still acknowledged.
	// Defaults 1,000,000 flows and 256 MiB of encoded flows; negative means no bound (docs/limits.md).
	MaxWindowFlows int64
	MaxWindowBytes int64
	// CloseRetryMin and CloseRetryMax bound the backoff between the attempts to close a window whose
	// sample cannot be written: CloseRetryMin after the first failure, doubling up to CloseRetryMax
	// (defaults 2 s and 10 min). Other windows close meanwhile.
	CloseRetryMin time.Duration
	CloseRetryMax time.Duration
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
	if c.MaxWindowFlows == 0 {
		c.MaxWindowFlows = DefaultMaxWindowFlows
	}
	if c.MaxWindowBytes == 0 {
		c.MaxWindowBytes = DefaultMaxWindowBytes
	}
	if c.CloseRetryMin <= 0 {
		c.CloseRetryMin = 2 * time.Second
	}
	if c.CloseRetryMax <= 0 {
		c.CloseRetryMax = 10 * time.Minute
	}
	c.CloseRetryMax = max(c.CloseRetryMax, c.CloseRetryMin)
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

// The per-window bounds' defaults (Config.MaxWindowFlows, MaxWindowBytes). A million flows is the
// sensor's flow table bound (--max-flows), so a default sensor's window fits. 256 MiB of encoded flows
// holds a million flows with names of up to about 150 bytes, and bounds the memory of closing a window:
// the collector's resident memory grew by about 7 times the window's encoded flows while closing it
// (bench/README.md, Closing a window), so a window at the bound needs about 1.8 GiB.
const (
	DefaultMaxWindowFlows = 1_000_000
	DefaultMaxWindowBytes = 256 << 20
)

// windowLimits is the store's form of the per-window bound.
func (c *Config) windowLimits() store.WindowLimits {
	return store.WindowLimits{MaxFlows: max(c.MaxWindowFlows, 0), MaxBytes: max(c.MaxWindowBytes, 0)}
}

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
		health: hs, conns: newConnGuard(log, m, cfg.MaxConnections),
	}
	if err := c.newRelay(reg); err != nil {
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
	return closer.Config{Dir: c.SampleDir(), Grace: c.cfg.Grace, Relay: c.relay != nil, Budget: budget,
		Retry: backoff.Policy{Base: c.cfg.CloseRetryMin, Max: c.cfg.CloseRetryMax}}
}

// sampleWritten is called once a new sample's file is written: retention notes, the watchers, the relay.
func (c *Collector) sampleWritten(s *store.Sample, b closer.Built) {
	c.noteRetention(s, b)
	c.events.publish(*s, "") // a new sample (or revision): no previous state
	c.notifyRelay()
}
