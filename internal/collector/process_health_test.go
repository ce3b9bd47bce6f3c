package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

// processLog is everything the collector processes started in dataDir logged.
func processLog(t *testing.T, dataDir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "collector-*.log"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// stopProcess sends SIGTERM and waits for a clean exit.
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("collector exited with %v after SIGTERM", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("collector did not exit after SIGTERM")
	}
}

// The start line says whether the store was created or an existing one opened (with its samples).
func TestStartLineSaysNewOrExistingStore(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	stopProcess(t, startCollectorProcess(t, p, dir, freeAddr(t)))
	if l := processLog(t, dir); !strings.Contains(l, `msg="store: created a new store" backend=sqlite`) {
		t.Fatalf("first start does not say the store is new:\n%s", l)
	}
	stopProcess(t, startCollectorProcess(t, p, dir, freeAddr(t)))
	if l := processLog(t, dir); !strings.Contains(l, `msg="store: opened an existing store" backend=sqlite`) ||
		!strings.Contains(l, "samples=0") {
		t.Fatalf("second start does not say it opened an existing store with 0 samples:\n%s", l)
	}
}

// A damaged SQLite file makes the collector fail to start with a clear message, instead of serving
// (and writing into) damaged pages.
func TestDamagedStoreFailsStart(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "flowfleet.db")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		b := store.Batch{Host: fmt.Sprintf("host-%03d", i), StreamID: "s", Seq: 1, Received: time.Now(),
			Parts: []store.BatchPart{{WindowStart: 60, WindowSeconds: 60, FlowCount: 1, Flows: []byte(strings.Repeat("f", 500))}}}
		if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	for off := int64(2 * 4096); off < fi.Size(); off += 3 * 4096 {
		if _, err := f.WriteAt([]byte(strings.Repeat("\xa5\x5a", 8)), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	files := p.Files(auth.RoleCollector, "collector")
	cmd := exec.Command(collectorBinary(t), "--listen", freeAddr(t), "--metrics-listen", "", "--data-dir", dir,
		"--cert", files.CertFile, "--key", files.KeyFile, "--ca", files.CAFile)
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("the collector kept running on a damaged store")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1; output:\n%s", err, out)
	}
	for _, want := range []string{"integrity check of SQLite database", path, "restore it from a backup"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}

// On a full disk (a 2 MiB tmpfs filled up) the collector process answers /readyz 503 and gRPC health
// NOT_SERVING, while /healthz stays 200; with space again it is ready again. Mounting needs root.
func TestReadyzOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting the small tmpfs this test fills needs root (run the tests as root to cover a real full disk)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs on %s (%v): no real full disk to test on here", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	p := newTestPKI(t)
	metricsAddr, addr := freeAddr(t), freeAddr(t)
	startCollectorProcess(t, p, dir, addr, "--metrics-listen", metricsAddr)
	url := "http://" + metricsAddr
	waitFor(t, "/readyz 200", func() bool { return tryGet(url+"/readyz") == 200 })

	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	filler.Close()
	var body string
	waitFor(t, "/readyz 503 on a full disk", func() bool {
		var code int
		code, body = get(t, url+"/readyz")
		return code == 503
	})
	if !strings.Contains(body, "no space left on device") && !strings.Contains(body, "disk is full") {
		t.Errorf("/readyz reason %q does not say the disk is full", body)
	}
	if code, _ := get(t, url+"/healthz"); code != 200 {
		t.Errorf("/healthz %d on a full disk: liveness must not follow the store", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	hc := healthpb.NewHealthClient(dialAs(t, addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health on a full disk: %v, %v; want NOT_SERVING", resp, err)
	}

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz 200 with space again", func() bool { code, _ := get(t, url+"/readyz"); return code == 200 })
	if resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health with space again: %v, %v", resp, err)
	}
}

// Under a low open-file limit (300), idle TCP connections cannot starve the collector: the default
// connection limit (half of 300) refuses the ones past it, with a log line, while the store keeps its
// file descriptors and /readyz keeps answering 200; once the idle connections go, a real client is
// served. (Issue #14 item 8: 150 idle connections made health checks time out, with nothing logged.)
func TestLowFileLimitIdleConnections(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	files := p.Files(auth.RoleCollector, "collector")
	logPath := filepath.Join(dir, "collector-lowfd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// ulimit sets the soft and hard limits, so Go's raising the soft limit at start cannot undo it.
	cmd := exec.Command("sh", "-c", `ulimit -n 300 && exec "$0" "$@"`, collectorBinary(t),
		"--listen", addr, "--metrics-listen", metricsAddr, "--data-dir", dir, "--window", "60s",
		"--handshake-timeout", "1h", "--cert", files.CertFile, "--key", files.KeyFile, "--ca", files.CAFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	url := "http://" + metricsAddr
	waitFor(t, "/readyz 200", func() bool { return tryGet(url+"/readyz") == 200 })
	if l, _ := os.ReadFile(logPath); !strings.Contains(string(l), "max_connections=150") {
		t.Fatalf("the connection limit is not half of the open-file limit 300:\n%s", l)
	}
	var idle []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	waitFor(t, "a log line about the refused connections", func() bool {
		l, _ := os.ReadFile(logPath)
		return strings.Contains(string(l), "connection refused or closed by a limit") && strings.Contains(string(l), "reason=limit")
	})
	waitFor(t, "the metric of refused connections", func() bool {
		_, body := get(t, url+"/metrics")
		return strings.Contains(body, `flowfleet_collector_connections_rejected_total{reason="limit"} 50`)
	})
	for range 3 { // the probe keeps passing: the store still has its descriptors
		if code, body := get(t, url+"/readyz"); code != 200 {
			t.Fatalf("/readyz with the connection limit reached: %d %q", code, body)
		}
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	hc := healthpb.NewHealthClient(dialAs(t, addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	waitFor(t, "a real client served", func() bool {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

// tryGet is the status of GET url, or 0 when the request fails (nothing listening yet).
func tryGet(url string) int {
	resp, err := plainHTTP.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
