package sensor_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/ship"
)

const e2eTimeout = 30 * time.Second

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("capturing on lo needs root (or CAP_NET_RAW); run as root to include this test")
	}
}

// udpSink listens on a loopback UDP port (so datagrams are not refused) and returns the port.
func udpSink(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func sendUDP(t *testing.T, port, n int) {
	t.Helper()
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		if _, err := c.Write([]byte("flowfleet sensor end-to-end test payload")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// loopbackFlows returns the collector's UDP flows to 127.0.0.1:port and their source packets in total.
func loopbackFlows(c *sensortest.Collector, port int) ([]*flowfleetv1.Flow, int64) {
	var out []*flowfleetv1.Flow
	var pkts int64
	for _, f := range c.Flows() {
		// Both ends are local: the engine's direction rules may name either the source (R-DIR).
		p := strconv.Itoa(port)
		if f.GetProtocol() != flowfleetv1.Protocol_PROTOCOL_UDP || f.GetSrcAddr() != "127.0.0.1" || f.GetDstAddr() != "127.0.0.1" {
			continue
		}
		switch p {
		case f.GetDstPort():
			out = append(out, f)
			pkts += f.GetSrcPkts()
		case f.GetSrcPort():
			out = append(out, f)
			pkts += f.GetDstPkts()
		}
	}
	return out, pkts
}

func TestSensorInProcessLoopback(t *testing.T) {
	needRoot(t)
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	port := udpSink(t)
	cfg := loopbackConfig(t, p, c, port)
	s, err := sensor.New(cfg, sensor.Options{Logger: testLogger(t), Backoff: ship.Backoff{Base: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	_, collectorPort, _ := net.SplitHostPort(c.Addr())
	if want := "(udp port " + strconv.Itoa(port) + ") and not (host 127.0.0.1 and tcp port " + collectorPort + ")"; s.Filter() != want {
		t.Errorf("filter %q, want %q", s.Filter(), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	sensortest.Eventually(t, e2eTimeout, s.Connected, "sensor never connected")
	sendUDP(t, port, 5)
	metricsURL := "http://" + s.MetricsAddr() + "/metrics"
	sensortest.Eventually(t, e2eTimeout, func() bool {
		return strings.Contains(get(t, metricsURL), "flowfleet_sensor_packets_total 5")
	}, "5 packets never counted in the metrics")
	cancel() // what SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("sensor did not stop")
	}
	flows, pkts := loopbackFlows(c, port)
	if pkts != 5 {
		t.Fatalf("collector flows to port %d: %v (%d packets), want 5 packets", port, flows, pkts)
	}
	for _, f := range flows {
		if f.GetWindowStart()%300 != 0 || f.GetFirstSeen() < float64(f.GetWindowStart()) || f.GetSrcBytes()+f.GetDstBytes() != 5*40 {
			t.Errorf("flow %v", f)
		}
	}
	ends := c.WindowEnds()
	if len(ends) == 0 {
		t.Fatal("no window end")
	}
	for _, we := range ends {
		if we.GetWindowSeconds() != 300 || we.GetWindowStart()%300 != 0 || we.GetFirstFrameTime() < float64(we.GetWindowStart()) {
			t.Errorf("window end %v", we)
		}
	}
	if h := c.Hellos(); len(h) == 0 || h[0].GetStreamId() != s.StreamID() || h[0].GetWindowSeconds() != 300 {
		t.Errorf("hellos %v", h)
	}
	entries, _ := os.ReadDir(cfg.SpoolDir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".batch") {
			t.Errorf("acked batch %s left in the spool", e.Name())
		}
	}
	if _, err := os.Stat(cfg.SpoolDir + "/" + sensor.NameCacheFile); err != nil {
		t.Errorf("name cache not saved: %v", err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
