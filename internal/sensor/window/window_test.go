package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/flowpb"

	"buf.build/go/protovalidate"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/window"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

type event struct {
	flows []*flowfleetv1.Flow
	end   *flowfleetv1.WindowEnd
}

type recorder struct{ events []event }

func (r *recorder) Batch(f []*flowfleetv1.Flow)         { r.events = append(r.events, event{flows: f}) }
func (r *recorder) WindowEnd(we *flowfleetv1.WindowEnd) { r.events = append(r.events, event{end: we}) }

// take returns the events so far, after the Windower's emitter has delivered what it was given.
func (r *recorder) take(w *window.Windower) []event {
	w.Sync()
	e := r.events
	r.events = nil
	return e
}

// base is a window start for W = 300 s.
const base = 1_700_000_100

func validator(t *testing.T) func(*flowfleetv1.Flow) error {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	return func(f *flowfleetv1.Flow) error {
		if err := v.Validate(f); err != nil {
			t.Errorf("flow fails validation: %v (%v)", err, f)
			return err
		}
		return nil
	}
}

func TestWindowTwoWindowsBatchesAndWindowEnd(t *testing.T) {
	if base%300 != 0 {
		t.Fatal("base not aligned")
	}
	rec := &recorder{}
	w := window.New(window.Options{Window: 300 * time.Second, BatchFlows: 2, Check: validator(t), Logger: sensortest.QuietLogger()}, rec)
	t.Cleanup(w.Close)
	pkt := func(sec uint64, usec uint32, data []byte) {
		t.Helper()
		if !w.Packet(flow.LinkEthernet, sec, usec, data) {
			t.Fatalf("packet at %d dropped", sec)
		}
	}
	// Window 1: three UDP conversations and one TCP one.
	pkt(base+10, 250000, sensortest.UDPFrame("10.1.0.5", 40000, "10.2.0.9", 53, []byte("query-payload-000")))
	pkt(base+10, 500000, sensortest.UDPFrame("10.2.0.9", 53, "10.1.0.5", 40000, []byte("answer-payload-00000")))
	pkt(base+20, 0, sensortest.UDPFrame("10.1.0.5", 40001, "10.2.0.9", 123, []byte("ntp-payload-000000")))
	pkt(base+30, 0, sensortest.UDPFrame("10.1.0.5", 40002, "10.2.0.9", 514, []byte("syslog-payload-000")))
	pkt(base+40, 0, sensortest.TCPFrame("10.1.0.5", 50000, "10.2.0.9", 80, "S", nil))
	pkt(base+40, 1000, sensortest.TCPFrame("10.2.0.9", 80, "10.1.0.5", 50000, "SA", nil))
	if ev := rec.take(w); len(ev) != 0 {
		t.Fatalf("output before the window ended: %v", ev)
	}
	// A packet of the next window flushes the first.
	pkt(base+300+5, 0, sensortest.UDPFrame("10.1.0.6", 41000, "10.2.0.10", 53, []byte("next-window-query")))
	ev := rec.take(w)
	if len(ev) != 3 || ev[2].end == nil {
		t.Fatalf("want 2 batches and a window end, got %d events", len(ev))
	}
	var flows []*flowfleetv1.Flow
	for _, e := range ev[:2] {
		if len(e.flows) > 2 {
			t.Errorf("batch of %d flows, more than BatchFlows", len(e.flows))
		}
		flows = append(flows, e.flows...)
	}
	if len(flows) != 4 {
		t.Fatalf("%d flows in window 1, want 4", len(flows))
	}
	for _, f := range flows {
		if f.GetWindowStart() != base {
			t.Errorf("flow %s window_start %d, want %d", f.GetDstPort(), f.GetWindowStart(), base)
		}
		if f.GetFirstSeen() < base || f.GetFirstSeen() >= base+300 {
			t.Errorf("flow first_seen %f outside the window", f.GetFirstSeen())
		}
	}
	dns := flows[0]
	if dns.GetSrcAddr() != "10.1.0.5" || dns.GetDstPort() != "53" || dns.GetSrcPkts() != 1 || dns.GetDstPkts() != 1 ||
		dns.GetProtocol() != flowfleetv1.Protocol_PROTOCOL_UDP || dns.GetDstName() != "10.2.0.9" ||
		dns.GetNameSource() != flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL {
		t.Errorf("first flow %v", dns)
	}
	var tcp *flowfleetv1.Flow
	for _, f := range flows {
		if f.GetProtocol() == flowfleetv1.Protocol_PROTOCOL_TCP {
			tcp = f
		}
	}
	if tcp == nil || tcp.GetDstPort() != "80" || tcp.GetSrcPkts() != 1 || tcp.GetDstPkts() != 1 {
		t.Errorf("tcp flow %v", tcp)
	}
	end := ev[2].end
	if end.GetWindowStart() != base || end.GetWindowSeconds() != 300 || end.GetFirstFrameTime() != flow.FrameTime(base+10, 250000) {
		t.Errorf("window end %v, want start %d, first frame %v", end, base, flow.FrameTime(base+10, 250000))
	}

	// A packet just before the current window (another interface read late) is dropped and counted.
	if w.Packet(flow.LinkEthernet, base+299, 0, sensortest.UDPFrame("10.1.0.5", 1, "10.2.0.9", 2, []byte("late-late-late-late"))) {
		t.Error("late packet accepted")
	}
	if w.Late() != 1 {
		t.Errorf("late = %d", w.Late())
	}

	// No packet closes window 2: the wall clock does, at its end + grace.
	w.Tick(time.Unix(base+600, 0).Add(time.Second))
	if ev := rec.take(w); len(ev) != 0 {
		t.Fatalf("flushed before the grace period: %v", ev)
	}
	w.Tick(time.Unix(base+600, 0).Add(window.DefaultGrace))
	ev = rec.take(w)
	if len(ev) != 2 || len(ev[0].flows) != 1 || ev[1].end == nil {
		t.Fatalf("window 2: %d events", len(ev))
	}
	if f := ev[0].flows[0]; f.GetWindowStart() != base+300 || f.GetSrcAddr() != "10.1.0.6" {
		t.Errorf("window 2 flow %v", f)
	}
	if e := ev[1].end; e.GetWindowStart() != base+300 || e.GetFirstFrameTime() != flow.FrameTime(base+305, 0) {
		t.Errorf("window 2 end %v", e)
	}
	if w.Current() != base+600 {
		t.Errorf("current window %d after the wall-clock flush, want %d", w.Current(), base+600)
	}
	// An empty window sends nothing.
	w.Tick(time.Unix(base+900, 0).Add(window.DefaultGrace))
	if ev := rec.take(w); len(ev) != 0 {
		t.Errorf("empty window produced %v", ev)
	}
}

func TestWindowEvictedFlowsShippedWithCurrentWindow(t *testing.T) {
	rec := &recorder{}
	w := window.New(window.Options{Window: 60 * time.Second, MaxFlows: 2, Check: validator(t), Logger: sensortest.QuietLogger()}, rec)
	t.Cleanup(w.Close)
	start := uint64(base - base%60)
	for i := 0; i < 5; i++ {
		w.Packet(flow.LinkEthernet, start+uint64(i), 0, sensortest.UDPFrame("10.1.0.5", uint16(30000+i), "10.2.0.9", 53, []byte("some-query-payload")))
	}
	w.ShipEvicted()
	ev := rec.take(w)
	if len(ev) != 1 || len(ev[0].flows) != 3 {
		t.Fatalf("want one batch of the 3 evicted flows, got %v", ev)
	}
	for _, f := range ev[0].flows {
		if f.GetWindowStart() != int64(start) {
			t.Errorf("evicted flow window_start %d, want %d", f.GetWindowStart(), start)
		}
	}
	w.Flush()
	ev = rec.take(w)
	if len(ev) != 2 || len(ev[0].flows) != 2 || ev[1].end == nil {
		t.Fatalf("flush: %v", ev)
	}
	if got := ev[1].end.GetFirstFrameTime(); got != float64(start) {
		t.Errorf("first frame time %v, want %d (includes evicted flows' frames)", got, start)
	}
}

func TestWindowClockSteppedBack(t *testing.T) {
	rec := &recorder{}
	w := window.New(window.Options{Window: 60 * time.Second, Logger: sensortest.QuietLogger()}, rec)
	t.Cleanup(w.Close)
	start := uint64(base - base%60)
	w.Packet(flow.LinkEthernet, start+600, 0, sensortest.UDPFrame("10.1.0.5", 1000, "10.2.0.9", 53, []byte("payload-payload-1")))
	if !w.Packet(flow.LinkEthernet, start, 0, sensortest.UDPFrame("10.1.0.5", 1001, "10.2.0.9", 53, []byte("payload-payload-2"))) {
		t.Fatal("packet after a clock step dropped")
	}
	if w.Current() != int64(start) {
		t.Errorf("current %d, want %d", w.Current(), start)
	}
	if ev := rec.take(w); len(ev) != 2 {
		t.Errorf("the window before the step was not flushed: %v", ev)
	}
}

func TestToProtoNames(t *testing.T) {
	long := fmt.Sprintf("%01100d", 0)
	cases := []struct {
		in       flow.Flow
		name     string
		src      flowfleetv1.NameSource
		protocol flowfleetv1.Protocol
	}{
		{flow.Flow{DstAddr: "1.2.3.4", Protocol: flow.ProtoTCP}, "1.2.3.4", flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL, flowfleetv1.Protocol_PROTOCOL_TCP},
		{flow.Flow{DstAddr: "1.2.3.4", Name: "a.example", NameSource: flow.SourcePassive, Protocol: flow.ProtoUDP}, "a.example", flowfleetv1.NameSource_NAME_SOURCE_PASSIVE, flowfleetv1.Protocol_PROTOCOL_UDP},
		{flow.Flow{DstAddr: "1.2.3.4", Name: "b.example", NameSource: flow.SourceCache, Protocol: flow.ProtoICMP}, "b.example", flowfleetv1.NameSource_NAME_SOURCE_CACHE, flowfleetv1.Protocol_PROTOCOL_ICMP},
		{flow.Flow{DstAddr: "1.2.3.4", Name: "c.example", NameSource: flow.SourceSession, Protocol: flow.ProtoOther}, "c.example", flowfleetv1.NameSource_NAME_SOURCE_SESSION, flowfleetv1.Protocol_PROTOCOL_OTHER},
		{flow.Flow{DstAddr: "1.2.3.4", Name: "1.2.3.4", NameSource: flow.SourceOriginal}, "1.2.3.4", flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL, flowfleetv1.Protocol_PROTOCOL_OTHER},
		{flow.Flow{DstAddr: "1.2.3.4", Name: long, NameSource: flow.SourcePassive}, "1.2.3.4", flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL, flowfleetv1.Protocol_PROTOCOL_OTHER},
	}
	for i, c := range cases {
		p := flowpb.ToProto(&c.in, 600)
		if p.GetDstName() != c.name || p.GetNameSource() != c.src || p.GetProtocol() != c.protocol || p.GetWindowStart() != 600 {
			t.Errorf("case %d: %v", i, p)
		}
	}
}

// blockingSink holds every Batch until release is closed, like a spool on a stalled disk.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
	batches int
}

func (b *blockingSink) Batch([]*flowfleetv1.Flow) {
	if b.batches == 0 {
		close(b.entered)
	}
	b.batches++
	<-b.release
}
func (b *blockingSink) WindowEnd(*flowfleetv1.WindowEnd) {}

// The packet path goes on while a window's output is still being delivered: a flush must never make
// the capture queue wait for conversion or the spool.
func TestWindowPacketsGoOnWhileTheSinkIsBusy(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	w := window.New(window.Options{Window: 60 * time.Second, BatchFlows: 10, Logger: sensortest.QuietLogger()}, sink)
	start := uint64(base - base%60)
	for i := 0; i < 100; i++ {
		w.Packet(flow.LinkEthernet, start+1, uint32(i), sensortest.UDPFrame("10.1.0.5", uint16(20000+i), "10.2.0.9", 53, []byte("query-payload-000")))
	}
	w.Packet(flow.LinkEthernet, start+61, 0, sensortest.UDPFrame("10.1.0.5", 1, "10.2.0.9", 53, []byte("next-window-query")))
	<-sink.entered // the emitter is stuck in the first batch of the first window
	for i := 0; i < 1000; i++ {
		if !w.Packet(flow.LinkEthernet, start+62, uint32(i), sensortest.UDPFrame("10.1.0.6", uint16(20000+i), "10.2.0.9", 53, []byte("query-payload-001"))) {
			t.Fatalf("packet %d of the next window dropped", i)
		}
	}
	if got := w.Engine().Len(); got != 1001 {
		t.Errorf("next window holds %d flows, want 1001", got)
	}
	close(sink.release)
	w.Flush()
	w.Close()
	if sink.batches != 10+101 {
		t.Errorf("%d batches delivered, want 111", sink.batches)
	}
}

// TestWindowSetWindowAdoptsLength: a length set while a window is open moves the window's start to the
// new length's boundary without cutting it, and its end carries the new length.
func TestWindowSetWindowAdoptsLength(t *testing.T) {
	rec := &recorder{}
	w := window.New(window.Options{Window: 60 * time.Second, Logger: sensortest.QuietLogger()}, rec)
	t.Cleanup(w.Close)
	pkt := func(sec uint64, src uint16) {
		t.Helper()
		if !w.Packet(flow.LinkEthernet, sec, 0, sensortest.UDPFrame("10.1.0.5", src, "10.2.0.9", 53, []byte("payload-payload-1"))) {
			t.Fatalf("packet at %d dropped", sec)
		}
	}
	pkt(base+120, 1000) // the 60 s window at base+120
	w.SetWindow(300 * time.Second)
	pkt(base+200, 1001) // in the old length's next window, but the same 300 s window: no flush
	if ev := rec.take(w); len(ev) != 0 || w.Current() != base || w.Window() != 300*time.Second {
		t.Fatalf("after SetWindow(300s): events %v, current %d, window %s; want none, %d, 5m0s", ev, w.Current(), w.Window(), base)
	}
	pkt(base+300, 1002) // the next 300 s window flushes the first
	ev := rec.take(w)
	if len(ev) != 2 || ev[1].end == nil {
		t.Fatalf("want a batch and a window end, got %v", ev)
	}
	if end := ev[1].end; end.GetWindowStart() != base || end.GetWindowSeconds() != 300 {
		t.Errorf("window end %v, want start %d and 300 s", end, base)
	}
	if n := len(ev[0].flows); n != 2 {
		t.Errorf("%d flows in the first window, want 2 (one a packet before the change, one after)", n)
	}
	w.SetWindow(5 * time.Second) // out of range: ignored
	pkt(base+301, 1003)
	if w.Window() != 300*time.Second {
		t.Errorf("window %s after an out-of-range SetWindow, want 5m0s", w.Window())
	}
}
