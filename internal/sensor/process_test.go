package sensor_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// buildSensor builds cmd/sensor once per test binary, into a temporary directory removed by TestMain.
func buildSensor(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "flowfleet-sensor-bin")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "sensor")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/flowfleet/flowfleet/cmd/sensor").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// TestMain removes the built binary and fails the run when a goroutine outlives the tests (every
// sensor goroutine belongs to Run, which waits for all of them).
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type proc struct {
	cmd     *exec.Cmd
	log     *syncBuf
	metrics string
	done    chan error
}

func startSensor(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	port := freePort(t)
	p := &proc{log: &syncBuf{}, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, append(args, "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", port))...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.log
	p.cmd.Stdout = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(e2eTimeout):
		t.Fatalf("sensor did not exit after %s; log:\n%s", sig, p.log.String())
	}
	return nil
}

func batchFiles(t *testing.T, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	return len(m)
}

// TestSensorProcessSigtermSpoolsAndRestartDelivers runs the sensor binary: SIGTERM flushes the window
// and exits 0 with the unacknowledged batch left in the spool; the next start (configured through
// FLOWFLEET_* variables this time) replays it with the same stream id until it is acknowledged.
func TestSensorProcessSigtermSpoolsAndRestartDelivers(t *testing.T) {
	needRoot(t)
	bin := buildSensor(t)
	p := sensortest.NewPKI(t)
	c := sensortest.StartCollector(t, p, "127.0.0.1:0")
	c.HoldAcks(true)
	port := udpSink(t)
	spoolDir := t.TempDir()
	args := []string{"--collector", c.Addr(), "--interface", "lo", "--bpf", fmt.Sprintf("udp port %d", port),
		"--cert", p.Sensor.CertFile, "--key", p.Sensor.KeyFile, "--ca", p.Sensor.CAFile, "--server-name", "localhost",
		"--spool-dir", spoolDir, "--window", "60s", "--shutdown-timeout", "1s", "--log-format", "json"}

	first := startSensor(t, bin, nil, args...)
	sensortest.Eventually(t, e2eTimeout, func() bool { return len(c.Hellos()) == 1 }, "sensor never said hello; log:\n%s", first.log.String())
	sendUDP(t, port, 3)
	sensortest.Eventually(t, e2eTimeout, func() bool { return strings.Contains(get(t, first.metrics), "flowfleet_sensor_packets_total 3") },
		"packets never captured; log:\n%s", first.log.String())
	if err := first.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, first.log.String())
	}
	if _, pkts := loopbackFlows(c, port); pkts != 3 {
		t.Fatalf("collector got %d packets' worth of flows before the shutdown timeout, want 3", pkts)
	}
	if n := batchFiles(t, spoolDir); n == 0 {
		t.Fatal("the unacknowledged batch is not in the spool after exit")
	}
	if !strings.Contains(first.log.String(), `"msg":"shutdown timeout: batches left in the spool for the next start"`) {
		t.Errorf("no shutdown-timeout warning in the JSON log:\n%s", first.log.String())
	}
	received := c.Received()

	c.HoldAcks(false)
	env := []string{"FLOWFLEET_COLLECTOR=" + c.Addr(), "FLOWFLEET_INTERFACE=lo", "FLOWFLEET_BPF=udp port " + strconv.Itoa(port),
		"FLOWFLEET_CERT=" + p.Sensor.CertFile, "FLOWFLEET_KEY=" + p.Sensor.KeyFile, "FLOWFLEET_CA=" + p.Sensor.CAFile,
		"FLOWFLEET_SERVER_NAME=localhost", "FLOWFLEET_SPOOL_DIR=" + spoolDir, "FLOWFLEET_WINDOW=60s"}
	second := startSensor(t, bin, env)
	sensortest.Eventually(t, e2eTimeout, func() bool { return batchFiles(t, spoolDir) == 0 },
		"spooled batch never acknowledged after the restart; log:\n%s", second.log.String())
	if err := second.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("second exit: %v; log:\n%s", err, second.log.String())
	}
	for seq, n := range received {
		if got := c.Received()[seq]; got != n+1 {
			t.Errorf("seq %d received %d times in all, want %d (replayed once)", seq, got, n+1)
		}
	}
	h := c.Hellos()
	if len(h) < 2 || h[0].GetStreamId() != h[len(h)-1].GetStreamId() {
		t.Errorf("stream id not kept across the restart: %v", h)
	}
	if _, pkts := loopbackFlows(c, port); pkts != 3 {
		t.Errorf("flows stored %d packets' worth, want 3 (each batch once)", pkts)
	}
}

func TestSensorProcessBadConfigExits1(t *testing.T) {
	bin := buildSensor(t)
	out, err := exec.Command(bin, "--interface", "lo").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	if !strings.Contains(string(out), "--collector") || !strings.Contains(string(out), "--spool-dir") {
		t.Errorf("error does not name the missing settings: %s", out)
	}
}
