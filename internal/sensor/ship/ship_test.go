package ship_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/ship"
	"github.com/flowfleet/flowfleet/internal/sensor/spool"
)

const testTimeout = 20 * time.Second

var fastBackoff = ship.Backoff{Base: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, Max: 300 * time.Millisecond, ResetAfter: time.Second}

func flowBatch(i int) *flowfleetv1.FlowBatch {
	return &flowfleetv1.FlowBatch{Flows: []*flowfleetv1.Flow{{SrcAddr: "10.0.0.1", SrcPort: fmt.Sprint(1000 + i), DstAddr: "10.0.0.2",
		DstPort: "53", DstName: "10.0.0.2", NameSource: flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL,
		Protocol: flowfleetv1.Protocol_PROTOCOL_UDP, SrcPkts: 1, FirstSeen: 1700000000, LastSeen: 1700000000, WindowStart: 1699999800}}}
}

type rig struct {
	t   *testing.T
	pki *sensortest.PKI
	dir string
	sp  *spool.Spool
	m   *metrics.Metrics
	sh  *ship.Shipper
	run context.CancelFunc
	wg  sync.WaitGroup
}

func newRig(t *testing.T, p *sensortest.PKI, dir string, addrs ...string) *rig {
	t.Helper()
	r := &rig{t: t, pki: p, dir: dir, m: metrics.New(prometheus.NewRegistry())}
	var err error
	r.sp, err = spool.Open(spool.Options{Dir: dir, Logger: sensortest.QuietLogger(), Metrics: r.m})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := auth.NewClientCredentials(p.Sensor, "localhost", sensortest.QuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	r.sh, err = ship.New(ship.Options{Addrs: addrs, Creds: creds, Spool: r.sp, StreamID: r.sp.StreamID(),
		SoftwareVersion: "test", WindowSeconds: 300, Backoff: fastBackoff, WelcomeTimeout: 3 * time.Second,
		Logger: sensortest.QuietLogger(), Metrics: r.m, MaxInFlight: 8,
		DropsTotal: func() *flowfleetv1.DropCounters { return &flowfleetv1.DropCounters{KernelPackets: 9} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	return r
}

func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.run = cancel
	r.wg.Add(1)
	go func() { defer r.wg.Done(); _ = r.sh.Run(ctx) }()
}

// kill stops the shipper and releases the spool without any flushing: what SIGKILL leaves behind.
func (r *rig) kill() {
	if r.run != nil {
		r.run()
		r.wg.Wait()
		r.run = nil
	}
	r.sp.Close()
}

func (r *rig) append(n int) []uint64 {
	r.t.Helper()
	var seqs []uint64
	for i := 0; i < n; i++ {
		seq, err := r.sp.Append(flowBatch(i))
		if err != nil {
			r.t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestShipperAcksRemoveBatches(t *testing.T) {
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	r := newRig(t, p, t.TempDir(), c.Addr())
	r.append(20) // spooled before the first connection: replayed on connect
	r.start()
	r.append(30)
	r.sh.EnqueueWindowEnd(&flowfleetv1.WindowEnd{WindowStart: 1699999800, WindowSeconds: 300, FirstFrameTime: 1699999800.5}, 50)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.sh.WaitIdle(ctx); err != nil {
		t.Fatalf("not idle: spool %+v, collector has %v", r.sp.Stats(), c.Seqs())
	}
	if got := c.Seqs(); !slices.Equal(got, seqRange(1, 50)) {
		t.Fatalf("collector seqs %v", got)
	}
	if got := c.Order(); !slices.IsSorted(got) {
		t.Errorf("batches not sent in seq order: %v", got)
	}
	if st := r.sp.Stats(); st.Batches != 0 || st.Bytes != 0 {
		t.Errorf("spool not emptied by acks: %+v", st)
	}
	ev := c.Events()
	if ev[len(ev)-1] != "window_end 1699999800" || slices.Index(ev, "batch 50") > slices.Index(ev, "window_end 1699999800") {
		t.Errorf("window end not after the window's batches: %v", ev[max(0, len(ev)-3):])
	}
	h := c.Hellos()
	if len(h) != 1 || h[0].GetStreamId() != r.sp.StreamID() || h[0].GetWindowSeconds() != 300 || h[0].GetDropsTotal().GetKernelPackets() != 9 {
		t.Errorf("hello %v", h)
	}
	if r.sh.Window() != 300 { // the fake's Welcome has no window: an older collector's
		t.Errorf("window %d after a Welcome without one, want the configured 300", r.sh.Window())
	}
	if got := sensortest.Value(r.m.BatchesAcked); got != 50 {
		t.Errorf("acked metric %v", got)
	}
	if got := sensortest.Value(r.m.AckLatency); got != 50 {
		t.Errorf("ack latency observations %v", got)
	}
	if got := sensortest.Value(r.m.Connected); got != 1 {
		t.Errorf("connected gauge %v", got)
	}
}

func TestShipperCollectorRestartDeliversEverySeqOnce(t *testing.T) {
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	r := newRig(t, p, t.TempDir(), c.Addr())
	r.start()
	stopProducing := make(chan struct{})
	produced := make(chan int)
	var made atomic.Int64
	go func() {
		n := 0
		defer func() { produced <- n }()
		for {
			select {
			case <-stopProducing:
				return
			default:
			}
			r.append(1)
			n++
			made.Add(1)
			time.Sleep(2 * time.Millisecond) // the pace of production, not a wait
		}
	}()
	sensortest.Eventually(t, testTimeout, func() bool { return len(c.Seqs()) >= 30 }, "first batches")
	c.Stop() // breaks the stream while batches are being produced
	down := uint64(made.Load())
	// Events, not sleeps: batches are produced while the collector is down, and delivered after.
	sensortest.Eventually(t, testTimeout, func() bool { return uint64(made.Load()) >= down+20 }, "batches while down")
	c.Restart()
	sensortest.Eventually(t, testTimeout, func() bool {
		seqs := c.Seqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] > down+20
	}, "batches produced during the outage delivered after the restart")
	close(stopProducing)
	n := <-produced
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.sh.WaitIdle(ctx); err != nil {
		t.Fatalf("not idle: spool %+v", r.sp.Stats())
	}
	if got := c.Seqs(); !slices.Equal(got, seqRange(1, uint64(n))) {
		t.Fatalf("collector has %d seqs, want 1..%d: %v", len(got), n, got)
	}
	// A batch is received again only if it was in flight when the stream broke (sent, ack lost).
	dups := 0
	for seq, times := range c.Received() {
		if times > 2 {
			t.Errorf("seq %d received %d times", seq, times)
		}
		if times == 2 {
			dups++
		}
	}
	if dups > 8 {
		t.Errorf("%d batches replayed, more than the 8 that can be in flight", dups)
	}
	if len(c.Hellos()) < 2 || sensortest.Value(r.m.Reconnects) < 1 {
		t.Errorf("no reconnect: %d hellos", len(c.Hellos()))
	}
	t.Logf("%d batches produced, %d replayed after the collector restart", n, dups)
}

func TestShipperFailoverToSecondAddress(t *testing.T) {
	p := sensortest.NewPKI(t)
	first := sensortest.StartCollector(t, p, "127.0.0.1:0")
	second := sensortest.StartCollector(t, p, "127.0.0.1:0")
	r := newRig(t, p, t.TempDir(), first.Addr(), second.Addr())
	r.start()
	r.append(5)
	sensortest.Eventually(t, testTimeout, func() bool { return len(first.Seqs()) == 5 && r.sp.Stats().Batches == 0 }, "first collector")
	first.Stop()
	r.append(5)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.sh.WaitIdle(ctx); err != nil {
		t.Fatalf("not idle after failover: %+v", r.sp.Stats())
	}
	if got := second.Seqs(); !slices.Equal(got, seqRange(6, 10)) {
		t.Errorf("second collector has %v, want 6..10", got)
	}
	if h := second.Hellos(); len(h) == 0 || h[0].GetStreamId() != r.sp.StreamID() {
		t.Errorf("second collector hellos %v", h)
	}
}

func TestShipperFailoverWhenFirstAddressDown(t *testing.T) {
	p := sensortest.NewPKI(t)
	dead := sensortest.StartCollector(t, p, "127.0.0.1:0")
	dead.Stop()
	live := sensortest.StartCollector(t, p, "127.0.0.1:0")
	r := newRig(t, p, t.TempDir(), dead.Addr(), live.Addr())
	r.append(3)
	r.start()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.sh.WaitIdle(ctx); err != nil {
		t.Fatal("not idle")
	}
	if got := live.Seqs(); !slices.Equal(got, seqRange(1, 3)) {
		t.Errorf("live collector has %v", got)
	}
}

func TestShipperKilledAndRestartedResendsUnacked(t *testing.T) {
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	dir := t.TempDir()
	r := newRig(t, p, dir, c.Addr())
	r.start()
	r.append(4)
	sensortest.Eventually(t, testTimeout, func() bool { return r.sp.Stats().Batches == 0 }, "first acks")
	c.HoldAcks(true)
	r.append(6) // seqs 5..10: received, never acked
	sensortest.Eventually(t, testTimeout, func() bool { return len(c.Seqs()) == 10 }, "unacked batches received")
	id := r.sp.StreamID()
	r.kill()

	c.HoldAcks(false)
	r2 := newRig(t, p, dir, c.Addr())
	if got := r2.sp.Seqs(); !slices.Equal(got, seqRange(5, 10)) {
		t.Fatalf("spool after restart holds %v, want 5..10", got)
	}
	r2.start()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r2.sh.WaitIdle(ctx); err != nil {
		t.Fatalf("not idle: %+v", r2.sp.Stats())
	}
	rec := c.Received()
	for seq := uint64(1); seq <= 10; seq++ {
		want := 1
		if seq >= 5 {
			want = 2 // replayed after the restart, acknowledged as a duplicate
		}
		if rec[seq] != want {
			t.Errorf("seq %d received %d times, want %d", seq, rec[seq], want)
		}
	}
	h := c.Hellos()
	if h[len(h)-1].GetStreamId() != id {
		t.Error("stream id changed across the restart")
	}
	if seq, _ := r2.sp.Append(flowBatch(0)); seq != 11 {
		t.Errorf("next seq %d, want 11", seq)
	}
}

func TestShipperWindowEndResentUntilBatchesAcked(t *testing.T) {
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	r := newRig(t, p, t.TempDir(), c.Addr())
	c.HoldAcks(true)
	r.start()
	r.append(3)
	r.sh.EnqueueWindowEnd(&flowfleetv1.WindowEnd{WindowStart: 600, WindowSeconds: 300}, 3)
	sensortest.Eventually(t, testTimeout, func() bool { return len(c.WindowEnds()) == 1 }, "window end sent")
	if r.sh.Idle() {
		t.Fatal("idle with unacked batches")
	}
	c.Stop()
	c.HoldAcks(false)
	c.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.sh.WaitIdle(ctx); err != nil {
		t.Fatal("not idle")
	}
	ev := c.Events()
	last := slices.Index(ev[4:], "window_end 600") // after the first stream's 3 batches and window end
	if last < 0 || !slices.Contains(ev[4:4+last], "batch 3") {
		t.Errorf("window end not resent after the replayed batches: %v", ev)
	}
}

func TestBackoffSchedule(t *testing.T) {
	b := ship.DefaultBackoff
	b.Jitter = 0
	want := []time.Duration{time.Second, 1600 * time.Millisecond, 2560 * time.Millisecond}
	for i, w := range want {
		if got := b.Delay(i); got != w {
			t.Errorf("delay %d = %s, want %s", i, got, w)
		}
	}
	if got := b.Delay(100); got != 60*time.Second {
		t.Errorf("cap: %s", got)
	}
	j := ship.DefaultBackoff
	for i := 0; i < 1000; i++ {
		if d := j.Delay(0); d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("jittered delay %s outside ±20%%", d)
		}
	}
}

// TestShipperAdoptsCollectorWindow: a Welcome with another window makes the shipper adopt it (OnWindow,
// the next Hello at once), warn once however often it reconnects, and drop pending window ends of the
// old length, which the collector would refuse; a Welcome without a window (an older collector) keeps
// the configured length (TestShipperAcksRemoveBatches).
func TestShipperAdoptsCollectorWindow(t *testing.T) {
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	c.SetWindow(60)
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), Logger: sensortest.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	creds, err := auth.NewClientCredentials(p.Sensor, "localhost", sensortest.QuietLogger())
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	var adopted atomic.Int64
	sh, err := ship.New(ship.Options{Addrs: []string{c.Addr()}, Creds: creds, Spool: sp, StreamID: sp.StreamID(),
		SoftwareVersion: "test", WindowSeconds: 300, Backoff: fastBackoff, WelcomeTimeout: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnWindow: func(s uint32) { adopted.Add(int64(s)) }})
	if err != nil {
		t.Fatal(err)
	}
	// A window end made before the adoption (300 s) and one after (60 s).
	sh.EnqueueWindowEnd(&flowfleetv1.WindowEnd{WindowStart: 1699999800, WindowSeconds: 300}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sh.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sensortest.Eventually(t, testTimeout, sh.Connected, "never connected")
	sh.EnqueueWindowEnd(&flowfleetv1.WindowEnd{WindowStart: 1700000040, WindowSeconds: 60}, 0)
	wctx, wcancel := context.WithTimeout(context.Background(), testTimeout)
	defer wcancel()
	if err := sh.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	c.Restart() // a reconnect: the warning must not come again
	sensortest.Eventually(t, testTimeout, func() bool { return len(c.Hellos()) >= 3 && sh.Connected() }, "never reconnected")

	var windows []uint32
	for _, h := range c.Hellos() {
		windows = append(windows, h.GetWindowSeconds())
	}
	if !slices.Equal(windows, []uint32{300, 60, 60}) {
		t.Errorf("hello windows %v, want [300 60 60] (adopted at the first welcome)", windows)
	}
	if sh.Window() != 60 || adopted.Load() != 60 {
		t.Errorf("window %d, OnWindow got %d in total; want 60 and one call with 60", sh.Window(), adopted.Load())
	}
	if n := strings.Count(logs.String(), "the collector's window differs"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, logs.String())
	}
	var ends []string
	for _, we := range c.WindowEnds() {
		ends = append(ends, fmt.Sprintf("%d/%d", we.GetWindowStart(), we.GetWindowSeconds()))
	}
	if !slices.Equal(ends, []string{"1700000040/60"}) {
		t.Errorf("window ends %v, want only the 60 s one (the 300 s one dropped unsent)", ends)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
