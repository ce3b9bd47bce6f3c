// Package ship sends spooled flow batches to a collector over the IngestService.Ingest stream: hello,
// welcome, replay of every unacknowledged batch in seq order, then new batches as they are spooled, with
// a bounded number in flight. Acknowledged batches are deleted from the spool. A lost stream is reopened
// with exponential backoff, on the next collector address (round robin), so a sensor with several
// addresses fails over.
//
// # Window ends
//
// A WindowEnd is sent after every batch of its window has been sent on the current stream, and kept
// (and sent again on the next stream) until those batches are acknowledged. WindowEnds are not spooled:
// a sensor restart loses the pending ones, which only delays the collector's close by its grace period.
//
// # The collector's window
//
// The window length is the collector's: a Welcome carries it (window_seconds), and when it differs from
// the length the Hello carried, the shipper adopts it. It tells Options.OnWindow (the sensor moves its
// windows), warns once per Shipper when the length differs from the configured Options.WindowSeconds,
// ends the stream (the collector refuses a Hello of another length) and reconnects at once with the new
// length; later Hellos carry it. Pending window ends of another length are dropped unsent: the
// collector would refuse them, and closes those windows after its grace period. A Welcome without a
// window (0, a collector older than the field) leaves the length as it is.
package ship

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/spool"
)

// Spool is what the shipper needs of the spool (*spool.Spool satisfies it).
type Spool interface {
	// Next returns the lowest spooled seq greater than after.
	Next(after uint64) (uint64, bool)
	// Read returns a spooled batch.
	Read(seq uint64) (*flowfleetv1.FlowBatch, error)
	// Ack deletes an acknowledged batch.
	Ack(seq uint64) (bool, error)
	// Changed signals that batches were added.
	Changed() <-chan struct{}
}

var _ Spool = (*spool.Spool)(nil)

// Defaults.
const (
	DefaultMaxInFlight    = 64
	DefaultWelcomeTimeout = 15 * time.Second
	MaxPendingWindowEnds  = 1024
)

// DefaultKeepalive pings an idle connection every 60 s (a collector's keepalive enforcement policy must
// allow that: MinTime ≤ 60 s) and gives up on it after 20 s without an answer.
var DefaultKeepalive = keepalive.ClientParameters{Time: 60 * time.Second, Timeout: 20 * time.Second}

// Options configures a Shipper.
type Options struct {
	// Addrs are the collector addresses (host:port), tried in order, round robin. Required.
	Addrs []string
	// Creds are the transport credentials (auth.NewClientCredentials). Required.
	Creds credentials.TransportCredentials
	// Spool holds the batches. Required.
	Spool Spool
	// StreamID, SoftwareVersion and WindowSeconds go into each Hello. Required. WindowSeconds is the
	// configured length; a collector's Welcome replaces it (see the package doc).
	StreamID        string
	SoftwareVersion string
	WindowSeconds   uint32
	// OnWindow is called, on the Run goroutine, with the collector's window length when a Welcome
	// carries one other than the length in force; nil for none.
	OnWindow func(seconds uint32)
	// DropsTotal returns the losses since the process started, for each Hello; nil for none.
	DropsTotal func() *flowfleetv1.DropCounters
	// MaxInFlight bounds the batches sent and not yet acknowledged; 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Backoff is the reconnection schedule; the zero value means DefaultBackoff.
	Backoff Backoff
	// WelcomeTimeout bounds connecting plus waiting for the Welcome; 0 means DefaultWelcomeTimeout.
	WelcomeTimeout time.Duration
	// Keepalive; the zero value means DefaultKeepalive.
	Keepalive keepalive.ClientParameters
	// DialOptions are added to the defaults (tests).
	DialOptions []grpc.DialOption
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil means unregistered metrics.
	Metrics *metrics.Metrics
}

type pendingEnd struct {
	we    *flowfleetv1.WindowEnd
	after uint64 // the window's last batch seq
	sent  uint64 // the stream generation it was last sent on (0: not yet)
}

// Shipper sends the spool's batches to a collector. Run it in one goroutine; EnqueueWindowEnd, WaitIdle
// and Connected are safe to call from others.
type Shipper struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics

	mu        sync.Mutex
	ends      []pendingEnd
	endsCh    chan struct{}
	gen       uint64
	connected bool

	window atomic.Uint32 // the length Hellos carry: the configured one until a collector's replaces it
	warned bool          // the differing-window warning was logged (Run goroutine only)
}

// errWindowAdopted ends a session whose Welcome carried another window length: the collector refuses
// the stream, and the next Hello carries the adopted length.
var errWindowAdopted = errors.New("adopted the collector's window; reconnecting with it")

// New checks opts and returns a Shipper.
func New(opts Options) (*Shipper, error) {
	switch {
	case len(opts.Addrs) == 0:
		return nil, errors.New("shipper: no collector address")
	case opts.Creds == nil:
		return nil, errors.New("shipper: no transport credentials")
	case opts.Spool == nil:
		return nil, errors.New("shipper: no spool")
	case opts.StreamID == "":
		return nil, errors.New("shipper: no stream id")
	case opts.WindowSeconds == 0:
		return nil, errors.New("shipper: no window length")
	}
	if opts.SoftwareVersion == "" {
		opts.SoftwareVersion = "unknown"
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	opts.Backoff = opts.Backoff.withDefaults()
	if opts.WelcomeTimeout <= 0 {
		opts.WelcomeTimeout = DefaultWelcomeTimeout
	}
	if opts.Keepalive == (keepalive.ClientParameters{}) {
		opts.Keepalive = DefaultKeepalive
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil)
	}
	s := &Shipper{opts: opts, log: opts.Logger, m: opts.Metrics, endsCh: make(chan struct{}, 1)}
	s.window.Store(opts.WindowSeconds)
	return s, nil
}

// EnqueueWindowEnd queues we to be sent once every batch up to seq after (the window's last batch) has
// been sent.
func (s *Shipper) EnqueueWindowEnd(we *flowfleetv1.WindowEnd, after uint64) {
	s.mu.Lock()
	if len(s.ends) >= MaxPendingWindowEnds {
		old := s.ends[0]
		s.ends = s.ends[1:]
		s.log.Warn("too many window ends waiting for a collector; forgetting the oldest (the collector closes it after its grace period)",
			slog.Int64("window_start", old.we.GetWindowStart()))
	}
	s.ends = append(s.ends, pendingEnd{we: we, after: after})
	s.mu.Unlock()
	select {
	case s.endsCh <- struct{}{}:
	default:
	}
}

// Connected reports whether a stream is open and welcomed.
func (s *Shipper) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// Idle reports whether everything is delivered: the spool is empty and no WindowEnd is pending.
func (s *Shipper) Idle() bool {
	if _, ok := s.opts.Spool.Next(0); ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ends) == 0
}

// WaitIdle waits until Idle or ctx ends (it then returns ctx's error).
func (s *Shipper) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !s.Idle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Run ships until ctx ends, reconnecting as needed; it returns nil then. Batches not acknowledged stay
// in the spool.
func (s *Shipper) Run(ctx context.Context) error {
	attempt := 0
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		addr := s.opts.Addrs[i%len(s.opts.Addrs)]
		if i > 0 {
			s.m.Reconnects.Inc()
		}
		start := time.Now()
		welcomed, err := s.session(ctx, addr)
		if errors.Is(err, errWindowAdopted) && ctx.Err() == nil {
			// Once, at once: a collector that changes its window again waits for the backoff.
			welcomed, err = s.session(ctx, addr)
		}
		if ctx.Err() != nil {
			return nil
		}
		if welcomed && time.Since(start) >= s.opts.Backoff.ResetAfter {
			attempt = 0
		}
		delay := s.opts.Backoff.Delay(attempt)
		attempt++
		next := s.opts.Addrs[(i+1)%len(s.opts.Addrs)]
		level := slog.LevelWarn
		if IsPermanent(err) {
			level = slog.LevelError // retrying helps only once the certificate or the collector changes
		}
		s.log.Log(ctx, level, "collector stream ended; reconnecting", slog.String("collector", addr), slog.String("err", errText(err)),
			slog.String("next_collector", next), slog.Duration("retry_in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "stream closed by the collector"
	}
	return err.Error()
}

type recvd struct {
	seq  uint64
	dup  bool
	resp *flowfleetv1.IngestResponse
}

// session runs one stream; it reports whether the collector welcomed it.
func (s *Shipper) session(ctx context.Context, addr string) (bool, error) {
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(s.opts.Creds),
		grpc.WithKeepaliveParams(s.opts.Keepalive),
	}, s.opts.DialOptions...)
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	// The session's receiver ends once cancel (deferred below, so run first) has ended the stream; the
	// session waits for it, so no goroutine outlives Run.
	var recvWG sync.WaitGroup
	defer recvWG.Wait()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timedOut := make(chan struct{})
	welcomeTimer := time.AfterFunc(s.opts.WelcomeTimeout, func() { close(timedOut); cancel() })
	fail := func(what string, err error) error {
		select {
		case <-timedOut:
			return fmt.Errorf("%s: no welcome within %s: %w", what, s.opts.WelcomeTimeout, err)
		default:
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	stream, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(sctx)
	if err != nil {
		welcomeTimer.Stop()
		return false, fail("open stream", err)
	}
	hello := &flowfleetv1.Hello{StreamId: s.opts.StreamID, SoftwareVersion: s.opts.SoftwareVersion, WindowSeconds: s.window.Load()}
	if s.opts.DropsTotal != nil {
		hello.DropsTotal = s.opts.DropsTotal()
	}
	if err := stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: hello}}); err != nil {
		_, rerr := stream.Recv() // the stream's status
		welcomeTimer.Stop()
		return false, fail("send hello", firstErr(rerr, err))
	}
	resp, err := stream.Recv()
	if !welcomeTimer.Stop() {
		return false, fail("wait for welcome", firstErr(err, context.DeadlineExceeded))
	}
	if err != nil {
		return false, fail("wait for welcome", err)
	}
	welcome := resp.GetWelcome()
	if welcome == nil {
		return false, fmt.Errorf("collector answered the hello with %T, not a welcome", resp.GetMessage())
	}
	if w := welcome.GetWindowSeconds(); w != 0 && w != hello.GetWindowSeconds() {
		s.adoptWindow(w)
		return false, errWindowAdopted
	}
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.connected = true
	s.mu.Unlock()
	s.m.Connected.Set(1)
	defer func() {
		s.mu.Lock()
		s.connected = false
		s.mu.Unlock()
		s.m.Connected.Set(0)
	}()
	s.log.Info("connected to collector", slog.String("collector", addr), slog.String("host", welcome.GetHost()),
		slog.String("collector_version", welcome.GetCollectorVersion()), slog.String("stream_id", s.opts.StreamID))

	// The receiver hands acks to this goroutine, which owns the in-flight set.
	acks := make(chan recvd, 4*s.opts.MaxInFlight)
	recvErr := make(chan error, 1)
	recvWG.Add(1)
	go func() {
		defer recvWG.Done()
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			var r recvd
			switch m := resp.GetMessage().(type) {
			case *flowfleetv1.IngestResponse_Ack:
				r.seq = m.Ack.GetSeq()
			case *flowfleetv1.IngestResponse_Notice:
				r.resp = resp
				if m.Notice.GetCode() == flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH {
					r.seq, r.dup = m.Notice.GetSeq(), true
				}
			default:
				r.resp = resp
			}
			select {
			case acks <- r:
			case <-sctx.Done():
				return
			}
		}
	}()

	inflight := make(map[uint64]time.Time, s.opts.MaxInFlight)
	var lastSent uint64
	sendErr := func(what string, err error) error {
		// A failed Send means the stream is over; its status comes from Recv.
		select {
		case rerr := <-recvErr:
			return fmt.Errorf("%s: %w", what, firstErr(rerr, err))
		case <-time.After(time.Second):
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	handle := func(r recvd) {
		if r.resp != nil {
			s.notice(r.resp)
		}
		if r.seq == 0 {
			return
		}
		if t, ok := inflight[r.seq]; ok {
			s.m.AckLatency.Observe(time.Since(t).Seconds())
			delete(inflight, r.seq)
		}
		found, err := s.opts.Spool.Ack(r.seq)
		if err != nil {
			s.log.Warn("acknowledged batch not removed from the spool", slog.Uint64("seq", r.seq), slog.String("err", err.Error()))
		}
		if found {
			s.m.BatchesAcked.Inc()
		}
	}
	for {
		for len(inflight) < s.opts.MaxInFlight {
			seq, ok := s.opts.Spool.Next(lastSent)
			if !ok {
				break
			}
			b, err := s.opts.Spool.Read(seq)
			lastSent = seq
			if err != nil {
				if !errors.Is(err, spool.ErrNotFound) {
					s.log.Error("spooled batch unreadable; skipped", slog.Uint64("seq", seq), slog.String("err", err.Error()))
				}
				continue
			}
			if err := stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: b}}); err != nil {
				return true, sendErr("send batch", err)
			}
			inflight[seq] = time.Now()
			s.m.BatchesSent.Inc()
		}
		if err := s.sendEnds(stream, gen, lastSent); err != nil {
			return true, sendErr("send window end", err)
		}
		select {
		case <-s.opts.Spool.Changed():
		case <-s.endsCh:
		case r := <-acks:
			handle(r)
			for more := true; more; {
				select {
				case r := <-acks:
					handle(r)
				default:
					more = false
				}
			}
			s.retireEnds(gen)
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return true, err
		case <-sctx.Done():
			return true, ctx.Err()
		}
	}
}

// adoptWindow makes w, the collector's window length, the one Hellos carry.
func (s *Shipper) adoptWindow(w uint32) {
	if w != s.opts.WindowSeconds && !s.warned {
		s.warned = true
		s.log.Warn("the collector's window differs from this sensor's --window; using the collector's (warned once)",
			slog.Uint64("collector_window_seconds", uint64(w)), slog.Uint64("configured_window_seconds", uint64(s.opts.WindowSeconds)))
	}
	s.window.Store(w)
	if s.opts.OnWindow != nil {
		s.opts.OnWindow(w)
	}
}

// Window returns the window length in force, in seconds.
func (s *Shipper) Window() uint32 { return s.window.Load() }

// sendEnds sends, in order, the pending window ends whose batches have all been sent on this stream.
func (s *Shipper) sendEnds(stream grpc.BidiStreamingClient[flowfleetv1.IngestRequest, flowfleetv1.IngestResponse], gen, lastSent uint64) error {
	next, more := s.opts.Spool.Next(lastSent) // the first batch not yet sent on this stream
	for {
		s.mu.Lock()
		var pe *pendingEnd
		for i := range s.ends {
			if s.ends[i].sent != gen {
				pe = &s.ends[i]
				break
			}
		}
		if pe == nil || (more && next <= pe.after) {
			s.mu.Unlock()
			break
		}
		we := pe.we
		pe.sent = gen
		s.mu.Unlock()
		if we.GetWindowSeconds() != s.window.Load() {
			// Made before the collector's window was adopted: the collector would refuse it.
			s.log.Debug("window end of another window length dropped", slog.Int64("window_start", we.GetWindowStart()),
				slog.Uint64("window_seconds", uint64(we.GetWindowSeconds())))
			continue
		}
		if err := stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: we}}); err != nil {
			return err
		}
		s.m.WindowEndsSent.Inc()
	}
	s.retireEnds(gen)
	return nil
}

// retireEnds forgets the window ends sent on this stream whose batches are all acknowledged.
func (s *Shipper) retireEnds(gen uint64) {
	oldest, any := s.opts.Spool.Next(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.ends) > 0 && s.ends[0].sent == gen && (!any || oldest > s.ends[0].after) {
		s.ends = s.ends[1:]
	}
}

func (s *Shipper) notice(resp *flowfleetv1.IngestResponse) {
	n := resp.GetNotice()
	if n == nil {
		s.log.Debug("unexpected message from collector ignored", slog.String("type", fmt.Sprintf("%T", resp.GetMessage())))
		return
	}
	attrs := []any{slog.String("code", n.GetCode().String()), slog.Uint64("seq", n.GetSeq()),
		slog.Int64("window_start", n.GetWindowStart()), slog.String("message", n.GetMessage())}
	switch n.GetCode() {
	case flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH:
		s.log.Debug("collector already had a replayed batch", attrs...)
	default:
		s.log.Info("notice from collector", attrs...)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil && !errors.Is(e, io.EOF) {
			return e
		}
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// IsPermanent reports whether a stream error will not go away by retrying the same batches (the
// collector refused the sensor's identity or a message). The shipper still retries — certificates may be
// renewed — but such errors are worth an operator's attention.
func IsPermanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}
