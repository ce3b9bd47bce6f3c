// Package window drives the flow engine for a live sensor: it cuts the packet stream into windows of W
// seconds aligned to multiples of W since the Unix epoch (by packet time), flushes the engine at each
// boundary, and turns the flows into FlowBatch-sized slices of API flows and a WindowEnd per window.
//
// A Windower is not safe for concurrent use: one goroutine (the sensor's engine goroutine) calls all
// its methods, as the engine requires.
package window

import (
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"log/slog"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Sink receives what a Windower produces, in order, on the Windower's goroutine.
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
	MaxBatchFlows     = 10000 // FlowBatch.flows max_items
	DefaultGrace      = 2 * time.Second
	// LateTolerance is how far before the current window a packet may be and still count as "late"
	// (dropped and counted: it comes from another interface's capture, read a little after the
	// boundary). A packet further back means the clock was stepped back: the current window is flushed
	// and the packet's window starts.
	LateTolerance = 60 * time.Second
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
}

// Windower owns a flow engine and the current window.
type Windower struct {
	opts    Options
	w       int64 // window length, seconds
	eng     *flow.Engine
	sink    Sink
	log     *slog.Logger
	m       *metrics.Metrics
	cur     int64 // current window start; -1 before the first packet
	shipped int   // flows of the current window already passed to the sink
	evicted uint64
	late    uint64
	stepped uint64
	flushes uint64
	badLog  time.Time
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
	return &Windower{
		opts: opts, w: w, sink: sink, log: opts.Logger, m: opts.Metrics, cur: -1,
		eng: flow.NewEngine(flow.Options{DecodeVLAN: true, SessionNames: true, MaxFlows: opts.MaxFlows, CarryAnswers: float64(w)}),
	}
}

// Start returns the start of window containing sec.
func (w *Windower) Start(sec int64) int64 { return sec - sec%w.w }

// Current returns the current window's start, or -1 before the first packet.
func (w *Windower) Current() int64 { return w.cur }

// Late returns the packets dropped so far because their time was just before the current window.
func (w *Windower) Late() uint64 { return w.late }

// Engine returns the engine, for its statistics.
func (w *Windower) Engine() *flow.Engine { return w.eng }

// Packet feeds one packet. It flushes the current window first when the packet's time is in a later
// one. It returns false when the packet was dropped as late.
func (w *Windower) Packet(link flow.LinkType, sec uint64, usec uint32, data []byte) bool {
	ws := w.Start(int64(sec))
	switch {
	case w.cur < 0:
		w.cur = ws
	case ws > w.cur:
		w.flush()
		w.cur = ws
	case ws < w.cur:
		if w.cur-int64(sec) <= int64(LateTolerance/time.Second) {
			w.late++
			w.m.PacketDrops.WithLabelValues(metrics.ReasonLate).Inc()
			return false
		}
		w.stepped++
		w.log.Warn("packet time went back more than the late tolerance (clock stepped back?): flushing the current window",
			slog.Int64("window_start", w.cur), slog.Uint64("packet_time", sec))
		w.flush()
		w.cur = ws
	}
	w.eng.Packet(link, flow.FrameTime(sec, usec), data)
	if ev := w.eng.Stats().Evicted; ev-w.evicted >= uint64(w.opts.BatchFlows) {
		w.ShipEvicted()
	}
	return true
}

// Tick checks the wall clock: when now is past the current window's end plus the grace period, no
// packet has closed the window, so it is flushed here and the window containing now becomes current.
func (w *Windower) Tick(now time.Time) {
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
	flows := w.eng.TakeEvicted(w.opts.Cache)
	w.emit(flows)
}

// Flush ends the current window now (at shutdown): its flows become batches and a WindowEnd.
func (w *Windower) Flush() {
	if w.cur < 0 {
		return
	}
	w.flush()
}

func (w *Windower) flush() {
	ev := w.eng.Stats().Evicted
	if ev > w.evicted {
		w.m.Evictions.Add(float64(ev - w.evicted)) // evicted flows not yet taken are part of the flush
	}
	w.evicted = ev // engine statistics are cumulative across flushes
	s := w.eng.Flush(w.opts.Cache)
	w.flushes++
	w.m.Windows.Inc()
	w.emit(s.Flows)
	if w.shipped > 0 {
		we := &flowfleetv1.WindowEnd{WindowStart: w.cur, WindowSeconds: uint32(w.w)}
		if s.Start != flow.NoStart && s.Start > 0 {
			we.FirstFrameTime = s.Start
		}
		w.sink.WindowEnd(we)
	}
	w.log.Debug("window flushed", slog.Int64("window_start", w.cur), slog.Int("flows", w.shipped))
	w.shipped = 0
	if w.opts.Cache != nil {
		if err := w.opts.Cache.Save(); err != nil {
			w.log.Warn("name cache not saved", slog.String("error", err.Error()))
		}
	}
}

// emit converts flows and passes them to the sink in batches.
func (w *Windower) emit(flows []flow.Flow) {
	if len(flows) == 0 {
		return
	}
	batch := make([]*flowfleetv1.Flow, 0, min(len(flows), w.opts.BatchFlows))
	for i := range flows {
		pf := flowpb.ToProto(&flows[i], w.cur)
		if w.opts.Check != nil {
			if err := w.opts.Check(pf); err != nil {
				w.m.FlowsRejected.Inc()
				if now := time.Now(); now.Sub(w.badLog) > time.Minute {
					w.badLog = now
					w.log.Error("flow fails the API's validation rules; dropped (further ones logged at most once a minute)",
						slog.String("flow", flows[i].Key()), slog.String("error", err.Error()))
				}
				continue
			}
		}
		batch = append(batch, pf)
		if len(batch) == w.opts.BatchFlows {
			w.send(batch)
			batch = make([]*flowfleetv1.Flow, 0, min(len(flows)-i-1, w.opts.BatchFlows))
		}
	}
	if len(batch) > 0 {
		w.send(batch)
	}
}

func (w *Windower) send(batch []*flowfleetv1.Flow) {
	w.shipped += len(batch)
	w.m.FlowsExported.Add(float64(len(batch)))
	w.sink.Batch(batch)
}
