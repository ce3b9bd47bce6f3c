package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/cli"
	"github.com/flowfleet/flowfleet/internal/relay"
)

// failingListener accepts until fail is closed, then fails Accept with a permanent error, as a
// listener whose socket was closed under it does.
type failingListener struct {
	net.Listener
	fail chan struct{}
}

func (l *failingListener) Accept() (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() { c, err := l.Listener.Accept(); res <- result{c, err} }()
	select {
	case r := <-res:
		return r.c, r.err
	case <-l.fail:
		l.Listener.Close() // ends the Accept above
		if r := <-res; r.c != nil {
			r.c.Close()
		}
		return nil, errors.New("injected: listener broken")
	}
}

// runCommand runs the collector command in this process on a fresh PKI and data directory.
func runCommand(t *testing.T, ctx context.Context, metricsAddr string) <-chan error {
	t.Helper()
	p := newTestPKI(t)
	files := p.Files(auth.RoleCollector, "collector")
	cmd := NewCommand()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--metrics-listen", metricsAddr, "--data-dir", t.TempDir(),
		"--cert", files.CertFile, "--key", files.KeyFile, "--ca", files.CAFile, "--log-level", "error",
		"--shutdown-timeout", "5s"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	return done
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, addr+" to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// When the gRPC server fails, run stops everything else (the metrics server, the collector's loops,
// the health watcher) and returns the failure, instead of dropping it and running on half-dead.
func TestRunReturnsAFailureAndStopsEverything(t *testing.T) {
	fail := make(chan struct{})
	listen = func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		return &failingListener{Listener: l, fail: fail}, nil
	}
	defer func() { listen = net.Listen }()
	metricsAddr := freeAddr(t)
	done := runCommand(t, context.Background(), metricsAddr)
	waitListening(t, metricsAddr)
	close(fail)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve:") || !strings.Contains(err.Error(), "injected: listener broken") {
			t.Fatalf("run returned %v, want the serve failure", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("run did not return after the gRPC server failed")
	}
	if c, err := net.DialTimeout("tcp", metricsAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("the metrics server still listens after run returned")
	}
}

// On cancellation (SIGTERM) run shuts down cleanly and returns nil, with every listener closed.
func TestRunStopsCleanlyOnCancel(t *testing.T) {
	metricsAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := runCommand(t, ctx, metricsAddr)
	waitListening(t, metricsAddr)
	code, body := get(t, "http://"+metricsAddr+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	waitFor(t, "/readyz 200", func() bool { code, _ := get(t, "http://"+metricsAddr+"/readyz"); return code == 200 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", metricsAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("the metrics server still listens after run returned")
	}
}

// Idle connections to the metrics listener (now reachable from the pod network, for the probes) are
// bounded and timed out: with every slot held by clients that send nothing, a probe still gets its
// answer once the header timeout frees a slot.
func TestMetricsListenerBoundsIdleConnections(t *testing.T) {
	metricsAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := runCommand(t, ctx, metricsAddr)
	defer func() { cancel(); <-done }()
	waitListening(t, metricsAddr)
	var idle []net.Conn
	for range metricsMaxConns + 10 {
		c, err := net.Dial("tcp", metricsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	code, body := get(t, "http://"+metricsAddr+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Fatalf("/healthz behind %d idle connections: %d %q", len(idle), code, body)
	}
	for _, c := range idle[:metricsMaxConns] { // the ones that got a slot were closed by the server
		waitClosed(t, c, "an idle metrics connection")
	}
}

// The key comes from the key file, else the environment or config file; it never shows in --help.
func TestRelayConfigAndHelp(t *testing.T) {
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", relayTestKey)
	vp := cli.NewViper()
	vp.Set("relay-concurrency", 4)
	vp.Set("networksage-poll-interval", relay.DefaultPollInterval)
	vp.Set("networksage-report-deadline", relay.DefaultReportDeadline)
	cfg, err := relayConfig(vp)
	if err != nil || cfg.APIKey.Reveal() != relayTestKey {
		t.Fatalf("key from the environment: %v", err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("  file-key-0123456789abcdef\n"), 0o600)
	vp.Set("networksage-api-key-file", keyFile)
	if cfg, err = relayConfig(vp); err != nil || cfg.APIKey.Reveal() != "file-key-0123456789abcdef" {
		t.Fatalf("key from the file: %v", err)
	}
	for _, bad := range [][2]time.Duration{{500 * time.Millisecond, time.Hour}, {time.Minute, time.Second}} {
		vp.Set("networksage-poll-interval", bad[0])
		vp.Set("networksage-report-deadline", bad[1])
		if _, err = relayConfig(vp); err == nil {
			t.Errorf("poll interval %s and report deadline %s accepted", bad[0], bad[1])
		}
	}
	vp.Set("networksage-poll-interval", relay.DefaultPollInterval)
	vp.Set("networksage-report-deadline", relay.DefaultReportDeadline)
	vp.Set("networksage-api-key-file", filepath.Join(t.TempDir(), "missing"))
	if _, err = relayConfig(vp); err == nil {
		t.Fatal("a missing key file was accepted")
	}
	vp.Set("networksage-api-key-file", "")
	vp.Set("networksage-type", "exe")
	if _, err = relayConfig(vp); err == nil {
		t.Fatal("a bad type was accepted")
	}

	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, flag := range []string{"--networksage-url", "--networksage-api-key-file", "--networksage-type", "--relay-concurrency"} {
		if !strings.Contains(help, flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
	if strings.Contains(help, relayTestKey) || strings.Contains(help, "--networksage-api-key ") {
		t.Errorf("--help shows the key or a key flag:\n%s", help)
	}
}
