package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/buildinfo"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/sensor/capture"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/ship"
	"github.com/flowfleet/flowfleet/internal/sensor/spool"
	"github.com/flowfleet/flowfleet/internal/sensor/window"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Options are in-process knobs beyond Config, for tests and embedding. The zero value is what the
// sensor command uses.
type Options struct {
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the metrics; nil means a new registry (with Go and process collectors).
	Registry *prometheus.Registry
	// Resolver resolves collector host names for the capture filter; nil means the system resolver.
	Resolver Resolver
	// Backoff overrides the reconnection schedule (zero: ship.DefaultBackoff).
	Backoff ship.Backoff
	// DialOptions are added to the shipper's gRPC dial options.
	DialOptions []grpc.DialOption
	// Now is the wall clock of window ends; nil means time.Now.
	Now func() time.Time

	// frameHook is window.Options.FrameHook: tests set it (export_test.go) to make the engine panic.
	frameHook func(data []byte)
}

// Sensor is one running sensor: capture sources, the flow engine with its windows, the spool and the
// shipper. Create it with New (which opens everything, so configuration errors show at once) and run
// it with Run.
type Sensor struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	reg     *prometheus.Registry
	m       *metrics.Metrics
	spool   *spool.Spool
	ship    *ship.Shipper
	queue   *capture.Queue
	slots   []*slot
	cache   *flow.NameCache
	win     *window.Windower
	filter  string
	metrics net.Listener

	// Loss accounting, shared by the engine goroutine (counters, losses without flows) and the
	// windower's emitter (batches); totals are also read by the shipper (Hello).
	lossMu     sync.Mutex
	reported   spool.Drops // what earlier batches carried
	spoolLoss  spool.Drops // losses of deleted batches, to carry again
	lostFlows  uint64      // flows lost in the spool, total
	lastBatch  time.Time
	totKernel  atomic.Uint64
	totSensorP atomic.Uint64
	totSensorF atomic.Uint64
	seenKernel uint64 // for metric deltas
	seenQueue  uint64
	logs       *logx.Limiter // mutes floods of failure lines
	rejected   atomic.Uint64

	// components are extra long-lived goroutines run in Run's errgroup; only tests set them
	// (export_test.go), to make a component fail.
	components []func(context.Context) error
}

// slot is one interface's capture, reopened after failures.
type slot struct {
	cfg    capture.Config
	mu     sync.Mutex
	src    capture.Source
	closed uint64 // kernel drops of earlier sources of this slot
}

func (sl *slot) kernelDrops() uint64 {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	n := sl.closed
	if sl.src != nil {
		n += sl.src.KernelDrops()
	}
	return n
}

// New validates cfg and opens the sensor's parts: spool, name cache, TLS credentials, capture sources
// (with the filter that excludes the collectors) and the metrics listener. Nothing runs until Run.
func New(cfg Config, opts Options) (*Sensor, error) {
	cfg.Collectors = splitList(cfg.Collectors)
	cfg.Interfaces = splitList(cfg.Interfaces)
	cfg.ExcludeInterfaces = splitList(cfg.ExcludeInterfaces)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			buildinfo.NewCollector("sensor"))
	}
	s := &Sensor{cfg: cfg, opts: opts, log: opts.Logger, reg: reg, m: metrics.New(reg), lastBatch: opts.Now(),
		logs: logx.NewLimiter(logEvery)}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()

	var err error
	s.spool, err = spool.Open(spool.Options{Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMaxBytes, Logger: s.log, Metrics: s.m})
	if err != nil {
		return nil, err
	}
	s.cache, err = flow.LoadNameCache(filepath.Join(cfg.SpoolDir, NameCacheFile))
	if err != nil {
		s.log.Warn("name cache", slog.String("err", err.Error()))
	}
	creds, err := auth.NewClientCredentials(auth.Files{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, CAFile: cfg.CAFile}, cfg.ServerName, s.log)
	if err != nil {
		return nil, err
	}
	s.ship, err = ship.New(ship.Options{
		Addrs: cfg.Collectors, Creds: creds, Spool: s.spool, StreamID: s.spool.StreamID(),
		SoftwareVersion: SoftwareVersion(), WindowSeconds: uint32(cfg.Window / time.Second),
		// The window is the collector's: the windower takes its length up at the next packet or tick.
		OnWindow:   func(secs uint32) { s.win.SetWindow(time.Duration(secs) * time.Second) },
		DropsTotal: s.dropsTotal, MaxInFlight: cfg.MaxInFlight, Backoff: opts.Backoff,
		DialOptions: opts.DialOptions, Logger: s.log, Metrics: s.m,
	})
	if err != nil {
		return nil, err
	}
	s.win = window.New(window.Options{
		Window: cfg.Window, BatchFlows: cfg.BatchFlows, MaxFlows: cfg.MaxFlows, Cache: s.cache,
		// flowpb.Check applies the proto's Flow rules ~30× faster than protovalidate, which matters
		// when a window of a million flows is flushed on the capture goroutine.
		Check: func(f *flowfleetv1.Flow) error {
			if err := flowpb.Check(f); err != nil {
				s.rejected.Add(1)
				return err
			}
			return nil
		},
		Logger: s.log, Metrics: s.m, FrameHook: opts.frameHook,
	}, s)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	own := CollectorFilter(ctx, cfg.Collectors, opts.Resolver, s.log)
	cancel()
	s.filter = CombineFilter(cfg.BPF, own)
	ifaces, err := capture.Expand(cfg.Interfaces, cfg.ExcludeInterfaces, cfg.Capture)
	if err != nil {
		return nil, err
	}
	s.queue = capture.NewQueue(cfg.QueuePackets, 0)
	for _, name := range ifaces {
		cc := capture.Config{Interface: name, Method: cfg.Capture, Snaplen: cfg.Snaplen, Promisc: cfg.Promisc,
			Filter: s.filter, BufferBytes: cfg.BufferBytes, Exclude: cfg.ExcludeInterfaces, Logger: s.log}
		src, err := capture.Open(cc)
		if err != nil {
			return nil, err
		}
		s.slots = append(s.slots, &slot{cfg: cc, src: src})
	}
	if cfg.MetricsListen != "" {
		s.metrics, err = net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	checkCert(cfg.CertFile, time.Now(), s.m, s.log)
	ok = true
	return s, nil
}

// StreamID returns the sensor's stream id.
func (s *Sensor) StreamID() string { return s.spool.StreamID() }

// Filter returns the capture filter in use (the user's and the collector exclusion).
func (s *Sensor) Filter() string { return s.filter }

// Registry returns the metrics registry.
func (s *Sensor) Registry() *prometheus.Registry { return s.reg }

// MetricsAddr returns the metrics listener's address, or "" when metrics are off.
func (s *Sensor) MetricsAddr() string {
	if s.metrics == nil {
		return ""
	}
	return s.metrics.Addr().String()
}

// Connected reports whether a collector stream is open.
func (s *Sensor) Connected() bool { return s.ship.Connected() }

func (s *Sensor) close() {
	for _, sl := range s.slots {
		if sl.src != nil {
			sl.src.Close()
		}
	}
	if s.metrics != nil {
		s.metrics.Close()
	}
	if s.win != nil {
		s.win.Close()
	}
	if s.spool != nil {
		s.spool.Close()
	}
}

// Run runs the sensor until ctx ends, then shuts down gracefully: capture stops, the packets already
// queued are processed, the current window is flushed into batches and a WindowEnd, everything is
// spooled, and the shipper gets up to Config.ShutdownTimeout to deliver it. Batches not acknowledged by
// then stay in the spool for the next start. Run returns nil after a graceful shutdown; it can be
// called once.
//
// The long-lived goroutines (capture sources, shipper, certificate watcher, metrics server) run in one
// errgroup. When one of them fails, Run shuts down the same way — the packets already captured are
// flushed into the spool, which is local — and returns that component's error, so the process exits
// non-zero and its supervisor restarts it. Run returns only after every goroutine it started has ended
// (the windower's emitter included).
func (s *Sensor) Run(ctx context.Context) error {
	defer s.close()
	// A failing component cancels gctx; the first error is what g.Wait returns.
	g, gctx := errgroup.WithContext(context.Background())
	shipCtx, stopShip := context.WithCancel(gctx)
	defer stopShip()
	auxCtx, stopAux := context.WithCancel(gctx)
	defer stopAux()
	// Capture and the engine loop stop on ctx (SIGTERM) or on a failed component.
	capCtx, stopCapture := context.WithCancel(ctx)
	defer stopCapture()
	defer context.AfterFunc(gctx, stopCapture)()

	var srv *http.Server
	if s.metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(s.metrics); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
		s.log.Info("metrics listening", slog.String("addr", s.metrics.Addr().String()))
	}
	g.Go(func() error {
		if err := s.ship.Run(shipCtx); err != nil {
			return fmt.Errorf("shipper: %w", err)
		}
		return nil
	})
	g.Go(func() error { watchCert(auxCtx, s.cfg.CertFile, s.m, s.log); return nil })
	for _, c := range s.components { // test hook (export_test.go)
		g.Go(func() error { return c(auxCtx) })
	}
	// Capture sources reopen themselves after a failure (runSlot), so they end only with capCtx; they
	// are waited for before the queue is drained, so they have their own group.
	var capG errgroup.Group
	for _, sl := range s.slots {
		capG.Go(func() error { s.runSlot(capCtx, sl); return nil })
	}
	s.log.Info("sensor running", slog.Any("interfaces", s.slotNames()), slog.String("capture", string(s.cfg.Capture)),
		slog.String("filter", s.filter), slog.Any("collectors", s.cfg.Collectors), slog.String("stream_id", s.StreamID()),
		slog.Duration("window", s.cfg.Window), slog.String("version", SoftwareVersion()))

	s.engineLoop(capCtx)

	// Shutdown, in dependency order.
	failed := gctx.Err() != nil
	if failed {
		s.log.Error("a sensor component failed: shutting down (flushing the current window into the spool)",
			slog.String("err", context.Cause(gctx).Error()))
	} else {
		s.log.Info("shutting down: stopping capture and flushing the current window")
	}
	stopCapture()
	_ = capG.Wait() // its goroutines return nil
	s.drainQueue()
	s.win.Flush()
	s.win.Close()
	s.pollCounters()
	s.reportLosses(0) // the last losses, so the collector hears of them
	var err error
	if !failed {
		sctx, cancel := context.WithTimeout(gctx, s.cfg.ShutdownTimeout)
		err = s.ship.WaitIdle(sctx)
		cancel()
	}
	st := s.spool.Stats()
	switch {
	case failed:
		s.log.Warn("after a failure: batches left in the spool for the next start", slog.Int("batches", st.Batches),
			slog.Uint64("first_seq", st.Oldest), slog.Int64("bytes", st.Bytes))
	case err != nil:
		s.log.Warn("shutdown timeout: batches left in the spool for the next start", slog.Int("batches", st.Batches),
			slog.Uint64("first_seq", st.Oldest), slog.Int64("bytes", st.Bytes))
	default:
		s.log.Info("all batches delivered")
	}
	stopShip()
	stopAux()
	if srv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := srv.Shutdown(hctx); err != nil {
			s.log.Warn("metrics server shutdown", slog.String("err", err.Error()))
			srv.Close() // so that Serve's goroutine ends
		}
		hcancel()
	}
	gerr := g.Wait()
	if err := s.cache.Save(); err != nil {
		s.log.Warn("name cache not saved", slog.String("err", err.Error()))
	}
	if gerr != nil {
		s.log.Error("sensor stopped after a failure", slog.String("err", gerr.Error()))
		return fmt.Errorf("component failed: %w", gerr)
	}
	s.log.Info("sensor stopped")
	return nil
}

func (s *Sensor) slotNames() []string {
	out := make([]string, len(s.slots))
	for i, sl := range s.slots {
		out[i] = sl.cfg.Interface
	}
	return out
}

// runSlot runs one interface's capture, reopening it with backoff after a failure (an interface that
// went down or was removed and comes back).
func (s *Sensor) runSlot(ctx context.Context, sl *slot) {
	delay := time.Second
	for {
		sl.mu.Lock()
		src := sl.src
		sl.mu.Unlock()
		if src != nil {
			err := src.Run(ctx, s.queue)
			sl.mu.Lock()
			sl.closed += src.KernelDrops()
			sl.src = nil
			sl.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.log.Error("capture failed; reopening", slog.String("interface", sl.cfg.Interface), slog.String("err", err.Error()),
					slog.Duration("retry_in", delay))
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, 30*time.Second)
		src, err := capture.Open(sl.cfg)
		if err != nil {
			s.log.Warn("capture reopen failed", slog.String("interface", sl.cfg.Interface), slog.String("err", err.Error()),
				slog.Duration("retry_in", delay))
			continue
		}
		delay = time.Second
		sl.mu.Lock()
		sl.src = src
		sl.mu.Unlock()
	}
}

// engineLoop feeds the engine from the queue until ctx ends.
func (s *Sensor) engineLoop(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	evict := time.NewTicker(s.cfg.BatchInterval)
	defer evict.Stop()
	for {
		select {
		case p := <-s.queue.C():
			s.packet(p)
		case <-tick.C:
			s.win.Tick(s.opts.Now())
			s.pollCounters()
			s.reportLosses(time.Minute) // losses without flows still reach the collector
		case <-evict.C:
			s.win.ShipEvicted()
		case <-ctx.Done():
			return
		}
	}
}

func (s *Sensor) packet(p capture.Packet) {
	s.queue.Done(p)
	s.m.Packets.Inc()
	s.win.Packet(p.Link, p.Sec, p.Usec, p.Data)
}

func (s *Sensor) drainQueue() {
	for {
		select {
		case p := <-s.queue.C():
			s.packet(p)
		default:
			return
		}
	}
}

// pollCounters brings the loss totals and their metrics up to date.
func (s *Sensor) pollCounters() {
	s.lossMu.Lock()
	defer s.lossMu.Unlock()
	s.pollCountersLocked()
}

func (s *Sensor) pollCountersLocked() {
	var kernel uint64
	for _, sl := range s.slots {
		kernel += sl.kernelDrops()
	}
	if kernel > s.seenKernel {
		s.m.PacketDrops.WithLabelValues(metrics.ReasonKernel).Add(float64(kernel - s.seenKernel))
		s.seenKernel = kernel
	}
	q := s.queue.Dropped()
	if q > s.seenQueue {
		s.m.PacketDrops.WithLabelValues(metrics.ReasonQueue).Add(float64(q - s.seenQueue))
		s.seenQueue = q
	}
	s.m.QueueLength.Set(float64(s.queue.Len()))
	l := s.spool.TakeLosses()
	s.lostFlows += l.Flows
	s.spoolLoss.KernelPackets += l.Drops.KernelPackets
	s.spoolLoss.SensorPackets += l.Drops.SensorPackets
	s.spoolLoss.SensorFlows += l.Drops.SensorFlows
	s.totKernel.Store(s.seenKernel)
	s.totSensorP.Store(s.seenQueue + s.win.Late() + s.win.Panics())
	s.totSensorF.Store(s.lostFlows + s.rejected.Load())
}

// pendingDrops returns the losses not yet reported in a batch. The caller holds lossMu.
func (s *Sensor) pendingDrops() spool.Drops {
	return spool.Drops{
		KernelPackets: s.totKernel.Load() - s.reported.KernelPackets + s.spoolLoss.KernelPackets,
		SensorPackets: s.totSensorP.Load() - s.reported.SensorPackets + s.spoolLoss.SensorPackets,
		SensorFlows:   s.totSensorF.Load() - s.reported.SensorFlows + s.spoolLoss.SensorFlows,
	}
}

// dropsTotal is the Hello's drops_total: losses since the process started.
func (s *Sensor) dropsTotal() *flowfleetv1.DropCounters {
	d := spool.Drops{KernelPackets: s.totKernel.Load(), SensorPackets: s.totSensorP.Load(), SensorFlows: s.totSensorF.Load()}
	return d.Proto()
}

// reportLosses spools a batch without flows when losses are pending and no batch has carried them
// for longer than quiet.
func (s *Sensor) reportLosses(quiet time.Duration) {
	s.lossMu.Lock()
	d := s.pendingDrops()
	if d.IsZero() || s.opts.Now().Sub(s.lastBatch) < quiet {
		s.lossMu.Unlock()
		return
	}
	b := s.takeLossesLocked(nil)
	s.lossMu.Unlock()
	s.append(b)
}

// Batch implements window.Sink: it spools one batch, with the losses counted since the previous one.
func (s *Sensor) Batch(flows []*flowfleetv1.Flow) {
	s.lossMu.Lock()
	s.pollCountersLocked()
	b := s.takeLossesLocked(flows)
	s.lossMu.Unlock()
	s.append(b)
}

// takeLossesLocked makes a batch of flows carrying the losses not yet reported and marks them reported.
func (s *Sensor) takeLossesLocked(flows []*flowfleetv1.Flow) *flowfleetv1.FlowBatch {
	d := s.pendingDrops()
	s.reported = spool.Drops{KernelPackets: s.totKernel.Load(), SensorPackets: s.totSensorP.Load(), SensorFlows: s.totSensorF.Load()}
	s.spoolLoss = spool.Drops{}
	s.lastBatch = s.opts.Now()
	return &flowfleetv1.FlowBatch{Flows: flows, Drops: d.Proto()}
}

// logEvery rate-limits the sensor's repeated failure lines: one line per kind and interval.
const logEvery = time.Minute

// append spools b; when that fails its flows and the losses it carried are counted to be reported again.
func (s *Sensor) append(b *flowfleetv1.FlowBatch) {
	if _, err := s.spool.Append(b); err != nil {
		s.spool.NoteLostFlows(uint64(len(b.Flows)), b.Drops)
		if ok, held := s.logs.Allow("spool_append", time.Now()); ok {
			s.log.Error("batch not spooled; its flows are lost (further failures logged at most once a minute)",
				slog.Int("flows", len(b.Flows)), slog.String("err", err.Error()), slog.Int(logx.SuppressedKey, held))
		}
	}
}

// WindowEnd implements window.Sink: the shipper sends it after the window's batches.
func (s *Sensor) WindowEnd(we *flowfleetv1.WindowEnd) {
	s.ship.EnqueueWindowEnd(we, s.spool.Stats().LastSeq)
}

var _ window.Sink = (*Sensor)(nil)

// Run creates a sensor from cfg and runs it until ctx ends (see Sensor.Run).
func Run(ctx context.Context, cfg Config, opts Options) error {
	s, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
