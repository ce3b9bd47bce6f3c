package sensor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/ship"
)

// loopbackConfig is a sensor on lo for UDP to port, shipping to c.
func loopbackConfig(t *testing.T, p *sensortest.PKI, c *sensortest.Collector, port int) sensor.Config {
	t.Helper()
	cfg := sensor.DefaultConfig()
	if c != nil {
		cfg.Collectors = []string{c.Addr()}
	}
	cfg.Interfaces = []string{"lo"}
	cfg.BPF = fmt.Sprintf("udp port %d", port)
	cfg.CertFile, cfg.KeyFile, cfg.CAFile = p.Sensor.CertFile, p.Sensor.KeyFile, p.Sensor.CAFile
	cfg.ServerName = "localhost"
	cfg.SpoolDir = t.TempDir()
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func runAsync(ctx context.Context, s *sensor.Sensor) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return done
}

func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(e2eTimeout):
		t.Fatal("sensor Run did not return")
	}
	return nil
}

// A failing long-lived component ends Run with its error (wrapped), after the same orderly shutdown as
// SIGTERM, and Run leaves no goroutine behind.
func TestRunEndsWithAFailingComponentsError(t *testing.T) {
	needRoot(t)
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	port := udpSink(t)
	boom := errors.New("injected component failure")

	t.Run("component", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		cfg := loopbackConfig(t, p, c, port)
		s, err := sensor.New(cfg, sensor.Options{Logger: testLogger(t), Backoff: ship.Backoff{Base: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		fail := make(chan struct{})
		sensor.AddComponent(s, func(ctx context.Context) error {
			select {
			case <-fail:
				return boom
			case <-ctx.Done():
				return nil
			}
		})
		done := runAsync(context.Background(), s) // never cancelled: only the failure ends it
		sensortest.Eventually(t, e2eTimeout, s.Connected, "sensor never connected")
		sendUDP(t, port, 2)
		sensortest.Eventually(t, e2eTimeout, func() bool { return metricValue(t, s, "flowfleet_sensor_packets_total", "") == 2 },
			"2 packets never counted")
		close(fail)
		err = waitRun(t, done)
		if !errors.Is(err, boom) {
			t.Fatalf("Run returned %v, want the component's error", err)
		}
		// The shipper stopped with the failure; the packets captured before it were flushed into the
		// spool for the next start, not lost.
		if n := batchFiles(t, cfg.SpoolDir); n == 0 {
			t.Error("the window's flows are not in the spool after the failure")
		}
	})

	t.Run("metrics server", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		s, err := sensor.New(loopbackConfig(t, p, c, port), sensor.Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := sensor.CloseMetricsListener(s); err != nil {
			t.Fatal(err)
		}
		err = waitRun(t, runAsync(context.Background(), s))
		if err == nil || !strings.Contains(err.Error(), "metrics server") {
			t.Fatalf("Run returned %v, want the metrics server's error", err)
		}
	})
}

// metricValue returns the sum of the sensor's metric name (with the reason label when reason is set).
func metricValue(t *testing.T, s *sensor.Sensor, name, reason string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if reason != "" && l.GetName() == "reason" && l.GetValue() != reason {
					continue metric
				}
			}
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

// sendPayload sends n UDP datagrams carrying payload to 127.0.0.1:port.
func sendPayload(t *testing.T, port int, payload []byte, n int) {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
}

// A panic of the flow engine on hostile frames drops only those frames: the sensor goes on, counts
// them under packet drops reason engine_panic, and reports them to the collector in-band with its
// sensor packet drops.
func TestSensorSurvivesEnginePanic(t *testing.T) {
	needRoot(t)
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	port := udpSink(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	poison := []byte("poison")
	opts := sensor.WithFrameHook(sensor.Options{Logger: testLogger(t), Backoff: ship.Backoff{Base: 50 * time.Millisecond}},
		func(data []byte) {
			if bytes.HasSuffix(data, poison) {
				panic("injected engine panic")
			}
		})
	s, err := sensor.New(loopbackConfig(t, p, c, port), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, s)
	sensortest.Eventually(t, e2eTimeout, s.Connected, "sensor never connected")
	sendUDP(t, port, 2)
	sendPayload(t, port, poison, 2)
	sendUDP(t, port, 3)
	sensortest.Eventually(t, e2eTimeout, func() bool { return metricValue(t, s, "flowfleet_sensor_packets_total", "") == 7 },
		"7 packets never counted")
	if got := metricValue(t, s, "flowfleet_sensor_packet_drops_total", "engine_panic"); got != 2 {
		t.Errorf("packet_drops_total{reason=engine_panic} = %v, want 2", got)
	}
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, pkts := loopbackFlows(c, port); pkts != 5 {
		t.Errorf("collector flows count %d packets, want the 5 good ones", pkts)
	}
	var sensorPkts uint64
	for _, b := range c.Batches() {
		sensorPkts += b.GetDrops().GetSensorPackets()
	}
	if sensorPkts != 2 {
		t.Errorf("batches report %d sensor packet drops, want the 2 dropped frames", sensorPkts)
	}
}

// Item 4 of issue 14, the sensor's side: flows the spool deletes to stay within its bound reach the
// collector in DropCounters.sensor_flows, every one of them exactly once, even when the batches that
// carried the count were deleted in turn.
func TestBatchesCarrySpoolFlowLosses(t *testing.T) {
	needRoot(t)
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	cfg := loopbackConfig(t, p, c, udpSink(t))
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg.SpoolMaxBytes = 1 << 20
	s, err := sensor.New(cfg, sensor.Options{Logger: testLogger(t), Backoff: ship.Backoff{Base: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	// Before Run, nothing ships: 8 batches of about 400 KB overflow the 1 MiB spool.
	name := strings.Repeat("n", 60)
	for i := range 8 {
		flows := make([]*flowfleetv1.Flow, 4000)
		for j := range flows {
			flows[j] = &flowfleetv1.Flow{SrcAddr: "10.0.0.1", DstAddr: "10.0.0.2", SrcPort: "1000", DstPort: fmt.Sprint(j),
				DstName: name, WindowStart: int64(i) * 300, FirstSeen: float64(i*300 + 1)}
		}
		s.Batch(flows)
	}
	lost := metricValue(t, s, "flowfleet_sensor_spool_dropped_flows_total", "")
	if lost < 4000 {
		t.Fatalf("spool dropped %v flows; the test needs it to drop batches", lost)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, s)
	// Every spooled batch acknowledged before the shutdown, so the last loss report (spooled at
	// shutdown) cannot push a batch already delivered out of the spool.
	sensortest.Eventually(t, e2eTimeout, func() bool { return metricValue(t, s, "flowfleet_sensor_spool_batches", "") == 0 },
		"spool never emptied")
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var reported, delivered uint64
	for _, b := range c.Batches() {
		reported += b.GetDrops().GetSensorFlows()
		delivered += uint64(len(b.GetFlows()))
	}
	if float64(reported) != lost {
		t.Errorf("batches report %d lost flows (sensor_flows), the spool dropped %v", reported, lost)
	}
	if delivered+reported != 8*4000 {
		t.Errorf("delivered %d + reported lost %d flows, want all %d accounted for", delivered, reported, 8*4000)
	}
}
