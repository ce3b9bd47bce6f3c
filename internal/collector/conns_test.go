package collector

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
)

func (g *testCollector) rejected(t *testing.T, reason string) float64 {
	t.Helper()
	return metricValue(t, g.c.metrics.connsRejected.WithLabelValues(reason))
}

// waitClosed waits until the server closes conn (a read ends with EOF or a reset).
func waitClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue // e.g. a TLS alert before the close
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: still open after %s", what, testTimeout)
		}
		return
	}
}

// Connections that never finish a TLS handshake (silent TCP, and a TLS record header that stops) are
// closed after HandshakeTimeout and counted; past MaxConnections a connection is closed at once and
// counted; once the idle ones are gone, a real client is served. (Issue #14 item 8: 150 idle TCP
// connections were held 120 s each, silently, until health checks timed out.)
func TestConnectionLimitAndHandshakeTimeout(t *testing.T) {
	p := newTestPKI(t)
	g := startCollectorWith(t, p, Config{Window: 60 * time.Second, Listener: Listener{MaxConnections: 3, HandshakeTimeout: 300 * time.Millisecond}}, collectorOptions{})
	if got := metricValue(t, g.c.metrics.connsLimit); got != 3 {
		t.Fatalf("connections_limit = %v, want 3", got)
	}
	var idle []net.Conn
	for i := range 3 {
		conn, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if i == 2 { // half-open TLS: a handshake record header, then nothing
			if _, err := conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}); err != nil {
				t.Fatal(err)
			}
		}
		idle = append(idle, conn)
	}
	waitFor(t, "3 connections counted", func() bool { return metricValue(t, g.c.metrics.conns) == 3 })
	over, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	waitClosed(t, over, "the connection past the limit")
	waitFor(t, "the refusal counted", func() bool { return g.rejected(t, reasonLimit) == 1 })
	if g.rejected(t, reasonHandshakeTimeout) != 0 {
		t.Fatalf("handshake timeouts counted before any timed out: %v", g.rejected(t, reasonHandshakeTimeout))
	}
	for i, conn := range idle {
		waitClosed(t, conn, "idle connection "+itoa(i))
	}
	waitFor(t, "3 handshake timeouts counted", func() bool { return g.rejected(t, reasonHandshakeTimeout) == 3 })
	waitFor(t, "the idle connections' places given back", func() bool { return metricValue(t, g.c.metrics.conns) == 0 })

	// A real client, with a certificate, is served.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn := dialAs(t, g.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{}))
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check after the limits: %v, %v", resp, err)
	}
	if g.rejected(t, reasonLimit) != 1 || g.rejected(t, reasonHandshakeFailed) != 0 {
		t.Fatalf("rejections: limit %v, failed %v", g.rejected(t, reasonLimit), g.rejected(t, reasonHandshakeFailed))
	}
}

// A client whose certificate the collector does not trust is counted as a failed handshake.
func TestForeignCertificateCountedAsFailedHandshake(t *testing.T) {
	p := newTestPKI(t)
	g := startCollectorWith(t, p, Config{Window: 60 * time.Second}, collectorOptions{})
	other := newTestPKI(t)
	foreign := other.Issue(t, auth.RoleReader, "mallory", pki.IssueOptions{})
	foreign.CAFile = p.CAFile()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := healthpb.NewHealthClient(dialAs(t, g.addr, foreign)).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("a foreign certificate was served")
	}
	waitFor(t, "the failed handshake counted", func() bool { return g.rejected(t, reasonHandshakeFailed) >= 1 })
	if g.rejected(t, reasonHandshakeTimeout) != 0 || g.rejected(t, reasonLimit) != 0 {
		t.Fatal("a failed handshake was counted under another reason")
	}
}

func TestDefaultMaxConnectionsLeavesAReserve(t *testing.T) {
	n := defaultMaxConnections()
	if lim, ok := openFileLimit(); ok && uint64(n)+connReserve > lim && uint64(n) > lim/2 {
		t.Fatalf("default %d connections leaves no reserve under the open-file limit %d", n, lim)
	}
	if n < 1 || n > 10000 {
		t.Fatalf("default %d connections", n)
	}
}
