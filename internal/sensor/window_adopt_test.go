package sensor_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector"
	"github.com/flowfleet/flowfleet/internal/sensor"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/ship"
	"github.com/flowfleet/flowfleet/internal/store"
)

// cutter is a TCP proxy whose connections can be cut, so a test can make the sensor reconnect.
type cutter struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{lis: lis, target: target}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			c.wg.Add(2)
			go func() { defer c.wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() { defer c.wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { lis.Close(); c.cut(); c.wg.Wait() })
	return c
}

// cut closes every proxied connection.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// startRealCollector runs a collector (in process, SQLite, real mTLS on loopback) with the given window
// and returns its address and store.
func startRealCollector(t *testing.T, p *sensortest.PKI, window time.Duration) (string, store.Store) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(st, collector.Config{DataDir: dir, Window: window, CloseInterval: 50 * time.Millisecond},
		log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := auth.NewServerCredentials(p.Collector, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := c.NewGRPCServer(creds)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = c.Run(ctx) }()
	go func() { defer wg.Done(); _ = srv.Serve(c.LimitListener(lis)) }()
	t.Cleanup(func() { c.Drain(); srv.Stop(); cancel(); wg.Wait(); st.Close() })
	return lis.Addr().String(), st
}

// TestSensorAdoptsCollectorWindow: a sensor configured with a 300 s window, against a real collector
// that closes 60 s windows, adopts the collector's window: its batches are accepted (none left in the
// spool), the samples have the collector's window, and the warning is logged once although the
// sensor reconnects.
func TestSensorAdoptsCollectorWindow(t *testing.T) {
	needRoot(t)
	p := sensortest.NewPKI(t)
	addr, st := startRealCollector(t, p, time.Minute)
	proxy := newCutter(t, addr)
	port := udpSink(t)
	cfg := loopbackConfig(t, p, nil, port)
	cfg.Collectors = []string{proxy.lis.Addr().String()}
	if cfg.Window != 300*time.Second {
		t.Fatalf("default window %s, want 300s", cfg.Window)
	}
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, tlog{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := sensor.New(cfg, sensor.Options{Logger: log, Backoff: ship.Backoff{Base: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, s)
	sensortest.Eventually(t, e2eTimeout, s.Connected, "sensor never connected")
	sendUDP(t, port, 3)
	proxy.cut()
	sensortest.Eventually(t, e2eTimeout, func() bool { return strings.Count(logs.String(), "connected to collector") >= 2 },
		"sensor never reconnected after the cut")
	sensortest.Eventually(t, e2eTimeout, s.Connected, "sensor never connected again")
	sendUDP(t, port, 2)
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("run: %v", err)
	}

	const warning = "the collector's window differs from this sensor's --window"
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("the window warning was logged %d times, want once", n)
	}
	entries, err := os.ReadDir(cfg.SpoolDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".batch") {
			t.Errorf("batch %s was not accepted (still in the spool)", e.Name())
		}
	}
	// The last window's end closes it on the collector (every earlier one ended at a packet).
	var samples []store.Sample
	sensortest.Eventually(t, e2eTimeout, func() bool {
		samples, _, err = st.ListSamples(context.Background(), store.SampleFilter{Host: sensortest.SensorName, State: store.StateWritten})
		return err == nil && len(samples) > 0
	}, "no sample written for the sensor")
	flows := 0
	for _, sm := range samples {
		flows += sm.FlowCount
		if sm.WindowSeconds != 60 || sm.WindowStart%60 != 0 {
			t.Errorf("sample %s: window %d s at %d, want the collector's 60 s", sm.ID, sm.WindowSeconds, sm.WindowStart)
		}
	}
	if flows == 0 {
		t.Errorf("samples %v hold no flow", samples)
	}
}
