package collector

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/logx"
)

// Ingest limits (docs/limits.md, section Ingest). Each refusal or close is counted in
// flowfleet_collector_ingest_refusals_total by reason and logged at most once per logEvery per reason.
const (
	DefaultMaxStreamsPerHost = 4
	DefaultMinIdleTimeout    = 15 * time.Minute
	DefaultHelloTimeout      = 30 * time.Second
	DefaultMaxFlowAge        = 30 * 24 * time.Hour
	DefaultMaxFlowAhead      = time.Hour
)

// The reasons of flowfleet_collector_ingest_refusals_total.
const (
	reasonHostStreams  = "host_stream_limit"   // the host has MaxStreamsPerHost streams open
	reasonOneStream    = "one_stream_per_host" // a second stream id for a host (--one-stream-per-host)
	reasonIdle         = "idle"                // no message for IdleTimeout
	reasonHelloTimeout = "hello_timeout"       // no hello within HelloTimeout
	reasonOutOfOrder   = "out_of_order"        // a seq at or below the mark that was never stored
	reasonTimeRange    = "time_range"          // a time outside the skew window
	reasonUnencodable  = "unencodable"         // a batch the collector could not encode
	reasonWindowLength = "window_length"       // a WindowEnd whose window_seconds is not the stream's
)

// streamSet tracks each host's open ingest streams on this collector: how many, under which stream
// ids. It admits a new stream only within the per-host limits, atomically, so that concurrent hellos
// cannot overshoot. Its size is bounded by the streams open (at most MaxStreams per connection).
type streamSet struct {
	mu     sync.Mutex
	byHost map[string]map[string]int // host → stream id → open streams
}

func newStreamSet() *streamSet { return &streamSet{byHost: make(map[string]map[string]int)} }

// admission is the outcome of streamSet.open.
type admission struct {
	err   error // non-nil: refused (a status error); reason says why
	why   string
	other string // a different stream id already open for the host ("" if none)
	open  int    // the host's open streams, this one included
}

// open admits a stream of host with stream id id, unless the host already holds max streams, or
// (oneID) a stream with another id. An admitted stream must be closed with close.
func (s *streamSet) open(host, id string, max int, oneID bool) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.byHost[host]
	n, other := 0, ""
	for sid, k := range ids {
		n += k
		if sid != id && other == "" {
			other = sid
		}
	}
	if n >= max {
		return admission{why: reasonHostStreams, open: n, err: status.Errorf(codes.ResourceExhausted,
			"host %s already has %d ingest streams open on this collector (its limit, --max-streams-per-host); close one or wait for it to time out", host, n)}
	}
	if oneID && other != "" {
		return admission{why: reasonOneStream, other: other, open: n, err: status.Errorf(codes.FailedPrecondition,
			"host %s already has an ingest stream open with another stream id (%.40q): two sensors appear to share one certificate (a cloned machine?); this collector runs with --one-stream-per-host, so the second is refused; give each sensor its own certificate",
			host, other)}
	}
	if ids == nil {
		ids = make(map[string]int)
		s.byHost[host] = ids
	}
	ids[id]++
	return admission{other: other, open: n + 1}
}

// close ends a stream open admitted; it returns the host's streams still open.
func (s *streamSet) close(host, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.byHost[host]
	if ids[id]--; ids[id] <= 0 {
		delete(ids, id)
	}
	n := 0
	for _, k := range ids {
		n += k
	}
	if n == 0 {
		delete(s.byHost, host)
	}
	return n
}

// count returns the host's open streams.
func (s *streamSet) count(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.byHost[host] {
		n += k
	}
	return n
}

func (s *streamSet) connected(host string) bool { return s.count(host) > 0 }

// logEvery is the interval of the refusal log lines: one per reason (logx.Limiter).
const logEvery = 10 * time.Second

// refused counts a refusal or close for reason and logs it (rate-limited) at level.
func (c *Collector) refused(reason string, level slog.Level, msg string, args ...any) {
	c.metrics.refusals.WithLabelValues(reason).Inc()
	ok, held := c.logLimit.Allow(reason, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, logx.SuppressedKey, held)
	}
	c.log.Log(context.Background(), level, msg, append(args, "reason", reason)...)
}

// timeBounds is the skew window flow times must fall into: [lo, hi] in Unix seconds.
type timeBounds struct{ lo, hi float64 }

func (c *Collector) timeBounds(now time.Time) timeBounds {
	lo, hi := math.Inf(-1), math.Inf(1)
	if c.cfg.Limits.MaxFlowAge > 0 {
		lo = float64(now.Add(-c.cfg.Limits.MaxFlowAge).Unix())
	}
	if c.cfg.Limits.MaxFlowAhead > 0 {
		hi = float64(now.Add(c.cfg.Limits.MaxFlowAhead).Unix())
	}
	return timeBounds{lo, hi}
}

// check returns an InvalidArgument status naming field when t (Unix seconds) is outside the bounds;
// slack widens the lower bound (a window starts up to one window before its first flow).
func (tb timeBounds) check(field string, t, slack float64) error {
	if t >= tb.lo-slack && t <= tb.hi {
		return nil
	}
	return status.Errorf(codes.InvalidArgument,
		"%s: %.6g is outside the collector's accepted time range %s to %s (its clock minus --max-flow-age, plus --max-flow-ahead); check the sensor's clock",
		field, t, fmtBound(tb.lo-slack), fmtBound(tb.hi))
}

func fmtBound(t float64) string {
	if math.IsInf(t, 0) {
		return "unbounded"
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}

// checkBatchTimes bounds every time of a batch's flows.
func (c *Collector) checkBatchTimes(b *flowfleetv1.FlowBatch, now time.Time) error {
	tb := c.timeBounds(now)
	w := c.cfg.Window.Seconds()
	for i, f := range b.GetFlows() {
		if err := tb.check(fmt.Sprintf("batch seq %d: flows[%d].first_seen", b.GetSeq(), i), f.GetFirstSeen(), 0); err != nil {
			return err
		}
		if err := tb.check(fmt.Sprintf("batch seq %d: flows[%d].last_seen", b.GetSeq(), i), f.GetLastSeen(), 0); err != nil {
			return err
		}
		if err := tb.check(fmt.Sprintf("batch seq %d: flows[%d].window_start", b.GetSeq(), i), float64(f.GetWindowStart()), w); err != nil {
			return err
		}
	}
	return nil
}

// checkWindowEndTimes bounds a WindowEnd's times (first_frame_time 0 means none).
func (c *Collector) checkWindowEndTimes(we *flowfleetv1.WindowEnd, now time.Time) error {
	tb := c.timeBounds(now)
	w := c.cfg.Window.Seconds()
	if err := tb.check("window_end.window_start", float64(we.GetWindowStart()), w); err != nil {
		return err
	}
	if t := we.GetFirstFrameTime(); t != 0 {
		return tb.check("window_end.first_frame_time", t, w)
	}
	return nil
}
