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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/buildinfo"
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

// closeBackoff is the wait after a window's attempt-th failed close.
func (c *Config) closeBackoff(attempt int) time.Duration {
	d := c.CloseRetryMin
	for i := 1; i < attempt && d < c.CloseRetryMax; i++ {
		d *= 2
	}
	return min(d, c.CloseRetryMax)
}

// Collector holds the collector's services and background work.
type Collector struct {
	cfg Config
	// store is the whole store, for what holds no narrower view: the readiness probe (health.go), the
	// pruner (retention.go) and the relay worker. The stages below hold only what they use.
	store   store.Store
	saver   batchSaver   // the commit loop (ingest.go)
	closer  windowCloser // the window closer (closeDue)
	log     *slog.Logger
	metrics *metrics
	commits chan *commitReq
	events  *hub
	streams *streamSet
	relay   *relay.Worker // nil when the relay is off
	health  *healthState  // readiness (health.go)
	conns   *connGuard    // connection limits (conns.go)

	building *byteBudget                                      // bounds the bytes of the windows being built at once (closeWindow)
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
		cfg: cfg, store: watched, saver: watched, closer: watched, log: log, metrics: m,
		commits: make(chan *commitReq, 4096), events: newHub(), streams: newStreamSet(), logLimit: logx.NewLimiter(logEvery),
		draining: make(chan struct{}), stopCommits: make(chan struct{}),
		health: hs, conns: newConnGuard(log, m, cfg.MaxConnections),
		building: newByteBudget(cfg.MaxWindowBytes),
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

// byteBudget is a weighted semaphore over bytes. Windows close closeParallel at a time, and building a
// sample takes about three times its window's encoded flows: without a budget, four windows at the
// per-window bound would need four times the memory of one. With it, the windows being built at once
// hold at most the budget (one window's bound) between them; a larger window waits for the others and
// then builds alone. Small windows, the usual case, still build in parallel.
type byteBudget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	total int64
	free  int64
}

// newByteBudget makes a budget of the per-window byte bound (DefaultMaxWindowBytes when unbounded).
func newByteBudget(maxWindowBytes int64) *byteBudget {
	if maxWindowBytes <= 0 {
		maxWindowBytes = DefaultMaxWindowBytes
	}
	b := &byteBudget{total: maxWindowBytes, free: maxWindowBytes}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n bytes (at most the whole budget) are free and takes them; it returns the
// release.
func (b *byteBudget) acquire(n int64) func() {
	n = min(max(n, 0), b.total)
	b.mu.Lock()
	for b.free < n {
		b.cond.Wait()
	}
	b.free -= n
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.free += n
		b.mu.Unlock()
		b.cond.Broadcast()
	}
}

// windowCloser is what the window closer (closeDue, closeWindow) needs of the store.
type windowCloser interface {
	CountOpenWindows(ctx context.Context) (int, error)
	DueWindows(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]store.WindowRef, error)
	CloseWindow(ctx context.Context, w store.WindowRef, build func(store.WindowContent) (store.NewSample, error)) (*store.Sample, error)
	FailWindow(ctx context.Context, f store.WindowFailure) (attempts int, err error)
}

// closeParallel bounds the windows closed at once.
const closeParallel = 4

// closeDue closes every window that is due. A window whose close fails is isolated: the failure is
// recorded in the store (FailWindow: backoff, error, a write_failed placeholder sample), DueWindows
// skips it until its next attempt, and the other windows go on closing. It is logged at its first
// failure and when a retry succeeds, not at every retry.
func (c *Collector) closeDue(ctx context.Context, now time.Time) {
	open, err := c.closer.CountOpenWindows(ctx)
	if err != nil {
		c.metrics.storeErrors.Inc()
		c.log.Error("counting open windows", "err", err)
	} else {
		c.metrics.openWindows.Set(float64(open))
	}
	for {
		due, err := c.closer.DueWindows(ctx, now, c.cfg.Grace, 64)
		if err != nil {
			c.metrics.storeErrors.Inc()
			c.log.Error("looking for windows to close", "err", err)
			return
		}
		if len(due) == 0 {
			return
		}
		// Several windows close at once: building a sample (decode, order, encode, write and sync its file)
		// takes milliseconds, and a fleet's windows all end together.
		var wg sync.WaitGroup
		var progress atomic.Int64 // windows closed, or whose failure is recorded (so not due again now)
		sem := make(chan struct{}, closeParallel)
		for _, w := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if c.closeWindow(ctx, w) {
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

// closeWindow closes one window; it reports whether the window is no longer due (closed, or its
// failure recorded).
func (c *Collector) closeWindow(ctx context.Context, w store.WindowRef) bool {
	// The recorded sample is built by the last call of the callback (SQLite may build again).
	var built builtFrom
	var attempts int
	s, err := c.closer.CloseWindow(ctx, w, func(wc store.WindowContent) (store.NewSample, error) {
		built = builtFrom{pruned: wc.Pruned, base: wc.BaseRevision, batches: len(wc.Batches)}
		attempts = wc.CloseAttempts
		var size int64
		for _, b := range wc.Batches {
			size += int64(len(b))
		}
		defer c.building.acquire(size)()
		return c.buildSampleForStore(wc)
	})
	if err != nil {
		c.metrics.closeFailures.Inc()
		n, ferr := c.closer.FailWindow(ctx, store.WindowFailure{WindowRef: w, Error: err.Error(), At: time.Now(),
			Backoff: c.cfg.closeBackoff, Name: func(rev int) (string, string) { return SampleName(w.Host, w.WindowStart, rev) }})
		if ferr != nil {
			c.metrics.storeErrors.Inc()
			c.log.Error("closing window", "host", w.Host, "window_start", w.WindowStart, "err", err)
			c.log.Error("recording a failed window close", "host", w.Host, "window_start", w.WindowStart, "err", ferr)
			return false
		}
		level := slog.LevelDebug // logged once per window: at its first failure
		if n == 1 {
			level = slog.LevelError
		}
		c.log.Log(ctx, level, "window close failed; it is retried with backoff while other windows close",
			"host", w.Host, "window_start", w.WindowStart, "attempts", n, "next_attempt_in", c.cfg.closeBackoff(n), "err", err)
		return true
	}
	if s == nil {
		return false
	}
	if attempts > 0 {
		c.log.Info("window written after failed closes", "sample", s.ID, "failed_attempts", attempts)
	}
	c.metrics.samplesWritten.Inc()
	c.log.Info("sample written", "sample", s.ID, "host", s.Host, "window_start", s.WindowStart,
		"revision", s.Revision, "flows", s.FlowCount, "flows_dropped", s.FlowsDropped,
		"file", filepath.Join(c.SampleDir(), s.FileName))
	c.noteRetention(s, built)
	c.events.publish(*s, "") // a new sample (or revision): no previous state
	c.notifyRelay()
	return true
}
