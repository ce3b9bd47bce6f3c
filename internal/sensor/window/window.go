// Package window drives the flow engine for a live sensor: it cuts the packet stream into windows of W
// seconds aligned to multiples of W since the Unix epoch (by packet time), flushes the engine at each
// boundary, and turns the flows into FlowBatch-sized slices of API flows and a WindowEnd per window.
//
// The packet path never waits for a window's output: at a boundary the engine's state is detached in
// constant time and handed to the Windower's emitter goroutine, which exports, names, converts and
// passes the flows to the Sink while packets of the next window are already being counted. Flushing a
// window of a million flows takes seconds; done on the packet path it would overflow the capture queue.
//
// A Windower's methods other than Late are not safe for concurrent use: one goroutine (the sensor's
// engine goroutine) calls them, as the engine requires. The Sink is called on the emitter goroutine,
// in order.
package window

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Sink receives what a Windower produces, in order, on the Windower's emitter goroutine.
type Sink interface {
	// Batch receives the flows of one batch (at most Options.BatchFlows, all of one window).
	Batch(flows []*flowfleetv1.Flow)
	// WindowEnd receives the end of a window, after the window's last Batch.
	WindowEnd(we *flowfleetv1.WindowEnd)
}

// Defaults and bounds.
const (
	DefaultWindow     = 300 * time.Second
	DefaultBatchFlows = 5000
	MaxBatchFlows     = flowpb.MaxBatchFlows // FlowBatch.flows max_items
	DefaultGrace      = 2 * time.Second
	// LateTolerance is how far before the current window a packet may be and still count as "late"
	// (dropped and counted: it comes from another interface's capture, read a little after the
	// boundary). A packet further back means the clock was stepped back: the current window is flushed
	// and the packet's window starts.
	LateTolerance = 60 * time.Second
	// queueJobs bounds the work handed to the emitter and not yet done: windows and chunks of evicted
	// flows. When the emitter falls that far behind (a stalled disk), the packet path waits for it.
	queueJobs = 16
)

// Options configures a Windower.
type Options struct {
	// Window is W, whole seconds, 10 s to 24 h. 0 means DefaultWindow.
	Window time.Duration
	// BatchFlows is the most flows per batch, 1–MaxBatchFlows; 0 means DefaultBatchFlows.
	BatchFlows int
	// MaxFlows bounds the engine's flow table (0: unbounded).
	MaxFlows int
	// Cache is the long-term name cache, saved after each window; nil for none.
	Cache *flow.NameCache
	// Grace is how long after a window's end, by the wall clock, Tick flushes a window that no packet
	// closed. 0 means DefaultGrace.
	Grace time.Duration
	// Check, when set, vets each flow before it is batched (the API's validation rules); a flow it
	// rejects is dropped, counted and logged.
	Check func(*flowfleetv1.Flow) error
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil means unregistered metrics.
	Metrics *metrics.Metrics
	// FrameHook, when set, runs on each frame just before the engine, inside the frame boundary's
	// recover. It is for fault injection in tests; leave it nil.
	FrameHook func(data []byte)
}

// Windower owns a flow engine and the current window.
type Windower struct {
	opts    Options
	w       int64        // window length, seconds
	next    atomic.Int64 // a length SetWindow asked for, taken up by the next Packet or Tick (0: none)
	eng     *flow.Engine
	log     *slog.Logger
	m       *metrics.Metrics
	cur     int64 // current window start; -1 before the first packet
	evicted uint64
	late    atomic.Uint64
	panics  atomic.Uint64
	logs    *logx.Limiter // mutes floods of panic and rejected-flow lines (shared with the emitter)
	stepped uint64
	flushes uint64
	jobs    chan job
	done    chan struct{}
	closed  bool
	em      emitter
}

// job is one piece of work for the emitter: a detached window, a chunk of evicted flows of the current
// window, or a sync request.
type job struct {
	start   int64 // the window's start
	secs    int64 // the window's length (for a detached window)
	win     *flow.Detached
	evicted []flow.Flow
	synced  chan struct{}
}

// emitter is the state of the emitter goroutine.
type emitter struct {
	opts    Options
	sink    Sink
	log     *slog.Logger
	m       *metrics.Metrics
	shipped int // flows of the current window already passed to the sink
	logs    *logx.Limiter
}

// New returns a Windower feeding sink. The engine runs with VLAN decoding and session names on, the
// table bounded by MaxFlows, and DNS answers carried across windows for one window length.
func New(opts Options, sink Sink) *Windower {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.BatchFlows <= 0 {
		opts.BatchFlows = DefaultBatchFlows
	}
	if opts.BatchFlows > MaxBatchFlows {
		opts.BatchFlows = MaxBatchFlows
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil)
	}
	w := int64(opts.Window / time.Second)
	logs := logx.NewLimiter(logEvery)
	win := &Windower{
		opts: opts, w: w, log: opts.Logger, m: opts.Metrics, cur: -1, logs: logs,
		eng:  flow.NewEngine(flow.Options{DecodeVLAN: true, SessionNames: true, MaxFlows: opts.MaxFlows, CarryAnswers: float64(w)}),
		jobs: make(chan job, queueJobs), done: make(chan struct{}),
		em: emitter{opts: opts, sink: sink, log: opts.Logger, m: opts.Metrics, logs: logs},
	}
	go win.em.run(win.jobs, win.done)
	return win
}

// Sync waits until everything handed to the emitter so far has reached the sink.
func (w *Windower) Sync() {
	if w.closed {
		return
	}
	ch := make(chan struct{})
	w.jobs <- job{synced: ch}
	<-ch
}

// Close waits for the emitter to finish what it was given and stops it. It does not flush the current
// window (Flush does). The Windower must not be used afterwards.
func (w *Windower) Close() {
	if w.closed {
		return
	}
	w.closed = true
	close(w.jobs)
	<-w.done
}

// Start returns the start of window containing sec.
func (w *Windower) Start(sec int64) int64 { return sec - sec%w.w }

// SetWindow makes d (whole seconds, 10 s to 24 h) the window length from the next Packet or Tick on: the
// sensor adopts its collector's window this way. It is safe to call from any goroutine. The window in
// progress is not cut: its start moves to the start of the new window containing it, so it ends at
// the next boundary of the new length (a longer window goes on; a shorter one ends early, and the
// collector files each of its flows under the window of the flow's first packet). The window ends
// already made keep the old length.
func (w *Windower) SetWindow(d time.Duration) {
	if secs := int64(d / time.Second); secs >= 10 && secs <= 86400 {
		w.next.Store(secs)
	}
}

// Window returns the window length in force.
func (w *Windower) Window() time.Duration { return time.Duration(w.w) * time.Second }

// adopt takes up a length SetWindow asked for; it runs on the Windower's goroutine.
func (w *Windower) adopt() {
	n := w.next.Load()
	if n == 0 || n == w.w {
		return
	}
	w.log.Info("window length changed", slog.Int64("from_seconds", w.w), slog.Int64("to_seconds", n))
	w.w = n
	if w.cur >= 0 {
		w.cur = w.Start(w.cur)
	}
}

// Current returns the current window's start, or -1 before the first packet.
func (w *Windower) Current() int64 { return w.cur }

// Late returns the packets dropped so far because their time was just before the current window.
// It is safe to call from any goroutine.
func (w *Windower) Late() uint64 { return w.late.Load() }

// Panics returns the frames dropped so far because the engine panicked on them. It is safe to call
// from any goroutine.
func (w *Windower) Panics() uint64 { return w.panics.Load() }

// Engine returns the engine, for its statistics.
func (w *Windower) Engine() *flow.Engine { return w.eng }

// Packet feeds one packet. It flushes the current window first when the packet's time is in a later
// one. It returns false when the packet was dropped as late.
func (w *Windower) Packet(link flow.LinkType, sec uint64, usec uint32, data []byte) bool {
	w.adopt()
	ws := w.Start(int64(sec))
	switch {
	case w.cur < 0:
		w.cur = ws
	case ws > w.cur:
		w.flush()
		w.cur = ws
	case ws < w.cur:
		if w.cur-int64(sec) <= int64(LateTolerance/time.Second) {
			w.late.Add(1)
			w.m.PacketDrops.WithLabelValues(metrics.ReasonLate).Inc()
			return false
		}
		w.stepped++
		w.log.Warn("packet time went back more than the late tolerance (clock stepped back?): flushing the current window",
			slog.Int64("window_start", w.cur), slog.Uint64("packet_time", sec))
		w.flush()
		w.cur = ws
	}
	if !w.feed(link, sec, usec, data) {
		return false
	}
	if ev := w.eng.Stats().Evicted; ev-w.evicted >= uint64(w.opts.BatchFlows) {
		w.ShipEvicted()
	}
	return true
}

// Bounds of what a recovered engine panic writes to the log.
const (
	// logEvery rate-limits the log lines of engine panics and of flows failing validation (each
	// is counted): one line per kind and interval.
	logEvery = time.Minute
	// maxPanicFrame is the most bytes of the frame logged (hex, at debug level), the largest snaplen:
	// the whole frame, to become a fuzz seed.
	maxPanicFrame = 65535
	// maxPanicText bounds the panic value and the stack in the log line.
	maxPanicText = 4096
)

// feed hands one frame to the engine: the sensor's frame boundary. A panic in the engine (a hostile
// frame meeting a decoder bug) is recovered here: the frame is dropped and counted
// (flowfleet_sensor_packet_drops_total{reason="engine_panic"}, reported to the collector with the
// sensor's packet drops), logged at most once per logEvery, and the next frame goes on.
//
// What stays consistent after a recovered panic:
//   - the Windower's own state (current window, eviction count): it is updated before the engine is
//     called, or after it returns normally;
//   - the engine's flow table: pkg/flow parses a frame's bytes only in its per-frame stage (prepare and
//     SessionName), which touches the frame counters, the DNS answer table (one complete answer at a
//     time) and the set of active addresses, and only then counts the parsed, fixed-size fields into the
//     table (apply). A panic caused by a frame's content therefore leaves the table as it was before
//     the frame. The frame's partial effects are bounded: frame counters that count it, and the DNS
//     answers it carried before the faulty byte (well-formed names, bounded by the answer table).
//
// A panic in the table stage itself would be a bug independent of the bytes; it is recovered the same
// way, but the affected flow's counters may then be off by that frame.
func (w *Windower) feed(link flow.LinkType, sec uint64, usec uint32, data []byte) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
			w.recovered(r, data)
		}
	}()
	if w.opts.FrameHook != nil {
		w.opts.FrameHook(data)
	}
	w.eng.Packet(link, flow.FrameTime(sec, usec), data)
	return true
}

// recovered counts and logs an engine panic on data.
func (w *Windower) recovered(r any, data []byte) {
	n := w.panics.Add(1)
	w.m.PacketDrops.WithLabelValues(metrics.ReasonEnginePanic).Inc()
	ok, held := w.logs.Allow("engine_panic", time.Now())
	if !ok {
		return
	}
	w.log.Error("flow engine panicked on a frame: frame dropped (a bug: please report it with the debug line; further panics logged at most once a minute)",
		slog.String("err", clip(fmt.Sprint(r), maxPanicText)), slog.Uint64("panics_total", n), slog.Int(logx.SuppressedKey, held),
		slog.Int64("window_start", w.cur), slog.Int("frame_bytes", len(data)),
		slog.String("stack", clip(string(debug.Stack()), maxPanicText)))
	frame := data[:min(len(data), maxPanicFrame)]
	w.log.Debug("frame that made the flow engine panic (hex, a fuzz seed for pkg/flow)",
		slog.String("frame_hex", hex.EncodeToString(frame)), slog.Bool("truncated", len(frame) < len(data)))
}

// clip bounds s to n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Tick checks the wall clock: when now is past the current window's end plus the grace period, no
// packet has closed the window, so it is flushed here and the window containing now becomes current.
func (w *Windower) Tick(now time.Time) {
	w.adopt()
	if w.cur < 0 {
		return
	}
	end := time.Unix(w.cur+w.w, 0).Add(w.opts.Grace)
	if now.Before(end) {
		return
	}
	w.flush()
	w.cur = w.Start(now.Unix())
}

// ShipEvicted passes the flows the engine exported early (its table was full) to the sink; they belong
// to the current window.
func (w *Windower) ShipEvicted() {
	ev := w.eng.Stats().Evicted
	if ev == w.evicted {
		return
	}
	w.m.Evictions.Add(float64(ev - w.evicted))
	w.evicted = ev
	if flows := w.eng.TakeEvicted(w.opts.Cache); len(flows) > 0 && !w.closed {
		w.jobs <- job{start: w.cur, evicted: flows}
	}
}

// Flush ends the current window now (at shutdown): its flows become batches and a WindowEnd, which
// have reached the sink when Flush returns.
func (w *Windower) Flush() {
	if w.cur >= 0 {
		w.flush()
	}
	w.Sync()
}

// flush detaches the current window and hands it to the emitter.
func (w *Windower) flush() {
	if w.closed {
		return
	}
	ev := w.eng.Stats().Evicted
	if ev > w.evicted {
		w.m.Evictions.Add(float64(ev - w.evicted)) // evicted flows not yet taken are part of the flush
	}
	w.evicted = ev // engine statistics are cumulative across flushes
	d := w.eng.Detach()
	w.flushes++
	w.m.Windows.Inc()
	w.jobs <- job{start: w.cur, secs: w.w, win: d}
}

// run does the emitter's jobs in order until jobs is closed.
func (e *emitter) run(jobs <-chan job, done chan<- struct{}) {
	defer close(done)
	for j := range jobs {
		switch {
		case j.synced != nil:
			close(j.synced)
		case j.win != nil:
			e.window(j.start, j.secs, j.win)
		default:
			e.emit(j.start, j.evicted)
		}
	}
}

// window finishes a detached window: its flows, then its WindowEnd, then the name cache is saved.
func (e *emitter) window(start, secs int64, d *flow.Detached) {
	t0 := time.Now()
	// A chunk of flow records at a time: a window of a million flows never holds them all as records.
	ord := d.Order(e.opts.Cache)
	b := e.batcher(start)
	var chunk []flow.Flow
	for k := range ord.Chunks() {
		chunk = ord.Chunk(k, chunk)
		b.add(chunk)
	}
	b.flush()
	ord.Done()
	if e.shipped > 0 {
		we := &flowfleetv1.WindowEnd{WindowStart: start, WindowSeconds: uint32(secs)}
		if s := ord.Start(); s != flow.NoStart && s > 0 {
			we.FirstFrameTime = s
		}
		e.sink.WindowEnd(we)
	}
	e.log.Debug("window flushed", slog.Int64("window_start", start), slog.Int("flows", e.shipped),
		slog.Duration("took", time.Since(t0)))
	e.shipped = 0
	if e.opts.Cache != nil {
		if err := e.opts.Cache.Save(); err != nil {
			e.log.Warn("name cache not saved", slog.String("err", err.Error()))
		}
	}
}

// emit converts flows of the window starting at start and passes them to the sink in batches.
func (e *emitter) emit(start int64, flows []flow.Flow) {
	b := e.batcher(start)
	b.add(flows)
	b.flush()
}

// batcher converts a window's flows and hands them to the sink Options.BatchFlows at a time.
type batcher struct {
	e     *emitter
	start int64
	batch []*flowfleetv1.Flow
}

func (e *emitter) batcher(start int64) *batcher { return &batcher{e: e, start: start} }

func (b *batcher) add(flows []flow.Flow) {
	e := b.e
	for i := range flows {
		pf := flowpb.ToProto(&flows[i], b.start)
		if e.opts.Check != nil {
			if err := e.opts.Check(pf); err != nil {
				e.m.FlowsRejected.Inc()
				if ok, held := e.logs.Allow("invalid_flow", time.Now()); ok {
					e.log.Error("flow fails the API's validation rules; dropped (further ones logged at most once a minute)",
						slog.String("flow", flows[i].Key()), slog.String("err", err.Error()), slog.Int(logx.SuppressedKey, held))
				}
				continue
			}
		}
		if b.batch == nil {
			b.batch = make([]*flowfleetv1.Flow, 0, e.opts.BatchFlows)
		}
		b.batch = append(b.batch, pf)
		if len(b.batch) == e.opts.BatchFlows {
			b.flush()
		}
	}
}

// flush sends what is batched.
func (b *batcher) flush() {
	if len(b.batch) > 0 {
		b.e.send(b.batch)
		b.batch = nil
	}
}

func (e *emitter) send(batch []*flowfleetv1.Flow) {
	e.shipped += len(batch)
	e.m.FlowsExported.Add(float64(len(batch)))
	e.sink.Batch(batch)
}
