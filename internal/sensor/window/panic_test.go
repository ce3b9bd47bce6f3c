package window_test

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/window"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A panic of the engine on one frame drops that frame only: it is counted under the engine_panic
// reason, logged once (rate-limited) with its bytes in hex at debug level, and the frames before and
// after it still make their flows in the same window.
func TestWindowRecoversEnginePanicAtTheFrameBoundary(t *testing.T) {
	var logs lockedBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New(nil)
	rec := &recorder{}
	poison := []byte("poison-frame-payload")
	hook := func(data []byte) {
		if bytes.Contains(data, poison) {
			panic("injected engine panic")
		}
	}
	w := window.New(window.Options{Window: 60 * time.Second, Check: validator(t), Logger: log, Metrics: m, FrameHook: hook}, rec)
	t.Cleanup(w.Close)
	start := uint64(base - base%60)
	good := func(port uint16) []byte {
		return sensortest.UDPFrame("10.1.0.5", port, "10.2.0.9", 53, []byte("ordinary-payload"))
	}
	bad := sensortest.UDPFrame("10.1.0.5", 2000, "10.2.0.9", 53, poison)
	if !w.Packet(flow.LinkEthernet, start+1, 0, good(1000)) {
		t.Fatal("good frame dropped")
	}
	for i := range 3 {
		if w.Packet(flow.LinkEthernet, start+2, uint32(i), bad) {
			t.Fatal("the frame that panicked reported as counted")
		}
	}
	if !w.Packet(flow.LinkEthernet, start+3, 0, good(1001)) {
		t.Fatal("good frame after the panic dropped")
	}
	if got := w.Panics(); got != 3 {
		t.Errorf("Panics() = %d, want 3", got)
	}
	if got := sensortest.Value(m.PacketDrops.WithLabelValues(metrics.ReasonEnginePanic)); got != 3 {
		t.Errorf("packet_drops_total{reason=engine_panic} = %v, want 3", got)
	}
	w.Flush()
	ev := rec.take(w)
	var ports []string
	for _, e := range ev {
		for _, f := range e.flows {
			ports = append(ports, f.GetSrcPort())
		}
	}
	if len(ev) != 2 || ev[1].end == nil || strings.Join(ports, ",") != "1000,1001" {
		t.Fatalf("want one batch of the flows of ports 1000 and 1001 and a window end, got %v (ports %v)", ev, ports)
	}
	out := logs.String()
	if n := strings.Count(out, "flow engine panicked on a frame"); n != 1 {
		t.Errorf("panic logged %d times, want once (rate-limited):\n%s", n, out)
	}
	if !strings.Contains(out, "injected engine panic") || !strings.Contains(out, "frame_hex="+hex.EncodeToString(bad)) {
		t.Errorf("log lacks the panic value or the frame's hex:\n%s", out)
	}
}
