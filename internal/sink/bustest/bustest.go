// Package bustest starts real redis-server and nats-server processes for tests of the message-bus sink
// (internal/sink), plain or over mutual TLS with certificates from the test PKI; a test whose machine
// lacks the binary is skipped with the reason (CI installs both: scripts/setup.sh).
package bustest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
)

// Server is a redis-server or nats-server process the test started, on a fixed port and data
// directory so that it can be killed and started again with its data.
type Server struct {
	t      *testing.T
	Kind   string // "redis" or "nats"
	bin    string
	dir    string
	port   int
	TLS    *pkitest.PKI // nil: plain
	server auth.Files

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// needBinary returns the path of a bus binary, or skips the test saying why (CI installs both:
// scripts/setup.sh).
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s): %v", name, name, err)
	}
	return p
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

// Start starts kind's server; with p, over mutual TLS with a server certificate from p.
func Start(t *testing.T, kind string, p *pkitest.PKI) *Server {
	t.Helper()
	bin := map[string]string{"redis": "redis-server", "nats": "nats-server"}[kind]
	b := &Server{t: t, Kind: kind, bin: needBinary(t, bin), dir: t.TempDir(), port: freePort(t), TLS: p}
	if p != nil {
		b.server = p.Issue(t, auth.RoleCollector, "bus", pki.IssueOptions{})
	}
	b.Start()
	t.Cleanup(b.Kill)
	return b
}

func (b *Server) args() []string {
	port := strconv.Itoa(b.port)
	if b.Kind == "redis" {
		args := []string{"--bind", "127.0.0.1", "--dir", b.dir, "--save", "", "--appendonly", "yes",
			"--appendfsync", "always", "--protected-mode", "no"}
		if b.TLS == nil {
			return append(args, "--port", port)
		}
		return append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", b.server.CertFile,
			"--tls-key-file", b.server.KeyFile, "--tls-ca-cert-file", b.server.CAFile, "--tls-auth-clients", "yes")
	}
	conf := filepath.Join(b.dir, "nats.conf")
	text := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n", b.port, filepath.Join(b.dir, "js"))
	if b.TLS != nil {
		text += fmt.Sprintf("tls { cert_file: %q\nkey_file: %q\nca_file: %q\nverify: true\ntimeout: 5 }\n",
			b.server.CertFile, b.server.KeyFile, b.server.CAFile)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return []string{"-c", conf}
}

// Start runs the server and waits until it accepts connections.
func (b *Server) Start() {
	b.t.Helper()
	cmd := exec.Command(b.bin, b.args()...)
	log, err := os.OpenFile(filepath.Join(b.dir, b.Kind+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start %s: %v", b.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	WaitFor(b.t, b.Kind+" to listen", func() bool {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(b.dir, b.Kind+".log"))
			b.t.Fatalf("%s exited at start:\n%s", b.bin, out)
		default:
		}
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// Kill stops the server with SIGKILL (no chance to flush anything) and waits for it to exit.
func (b *Server) Kill() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

func (b *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL is the sink URL of the server.
func (b *Server) URL() string {
	scheme := map[[2]bool]string{{true, false}: "redis", {true, true}: "rediss", {false, false}: "nats", {false, true}: "tls"}[[2]bool{b.Kind == "redis", b.TLS != nil}]
	return scheme + "://localhost:" + strconv.Itoa(b.port)
}

// ClientFiles issues a client certificate for the server's PKI (role collector, name).
func (b *Server) ClientFiles(t *testing.T, name string) auth.Files {
	t.Helper()
	return b.TLS.Issue(t, auth.RoleCollector, name, pki.IssueOptions{})
}

const testTimeout = 60 * time.Second

// WaitFor waits until cond holds, checking it every few milliseconds (the condition is the event).
func WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
