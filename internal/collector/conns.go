package collector

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/flowfleet/flowfleet/internal/logx"
)

// Connection limits (issue #14, item 8). Without them one client with a few hundred idle TCP
// connections used up a low open-file limit, so the store could not open files and health checks
// timed out, while every half-open TLS connection was held for grpc's default of 120 s, silently.
//
//   - LimitListener closes connections accepted beyond Config.Listener.MaxConnections at once (reason "limit").
//   - NewGRPCServer sets grpc.ConnectionTimeout(Config.Listener.HandshakeTimeout): a connection that has not
//     finished its TLS handshake and HTTP/2 preface by then is closed. A handshake that times out or
//     fails is counted with reason "handshake_timeout" or "handshake_failed" (a preface that never
//     comes after a good handshake is closed too, but not counted: grpc does it without telling).
//
// Each refusal or close is counted in flowfleet_collector_connections_rejected_total{reason} and logged
// at most once per connLogEvery per reason, with the number of others since the last line.

// The reasons a connection is refused or closed by the limits: a fixed set (metric label values).
const (
	reasonLimit            = "limit"
	reasonHandshakeTimeout = "handshake_timeout"
	reasonHandshakeFailed  = "handshake_failed"
)

// connLogEvery bounds the log lines about rejected connections: a flood of them is one line per
// reason per interval, not one per connection.
const connLogEvery = 10 * time.Second

// connReserve is the file descriptors kept out of the default connection limit, for the store
// (SQLite's database, WAL and shared-memory files on 8 connections, or up to 32 PostgreSQL
// connections), the metrics listener and its scrapers, sample files being written and the relay's
// uploads (up to 64 connections).
const connReserve = 256

// defaultMaxConnections is the connection limit when none is configured: 10,000, or the open-file
// limit less connReserve when that is lower (half the limit when the limit is under twice the reserve).
func defaultMaxConnections() int {
	const def = 10000
	n, ok := openFileLimit()
	if !ok {
		return def
	}
	switch {
	case n > def+connReserve:
		return def
	case n > 2*connReserve:
		return int(n) - connReserve
	default:
		return max(int(n)/2, 1)
	}
}

// connGuard counts, limits and reports the gRPC listener's connections.
type connGuard struct {
	log    *slog.Logger
	m      *metrics
	max    int
	active atomic.Int64
	logs   *logx.Limiter // keyed by reason
}

func newConnGuard(log *slog.Logger, m *metrics, maxConns int) *connGuard {
	g := &connGuard{log: log, m: m, max: maxConns, logs: logx.NewLimiter(connLogEvery)}
	for _, r := range []string{reasonLimit, reasonHandshakeTimeout, reasonHandshakeFailed} {
		m.connsRejected.WithLabelValues(r) // every reason is exported from the start, at 0
	}
	m.connsLimit.Set(float64(maxConns))
	return g
}

// rejected counts and (rate-limited) logs one connection refused or closed for reason.
func (g *connGuard) rejected(reason string, remote net.Addr, err error) {
	g.m.connsRejected.WithLabelValues(reason).Inc()
	ok, suppressed := g.logs.Allow(reason, time.Now())
	if !ok {
		return
	}
	attrs := []any{"reason", reason, "remote", remote.String(), "limit", g.max, "open", g.active.Load(),
		logx.SuppressedKey, suppressed}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	g.log.Warn("connection refused or closed by a limit", attrs...)
}

// LimitListener wraps the gRPC listener: a connection accepted while Config.Listener.MaxConnections are open
// is closed at once, counted and logged (rate-limited). Closing at once, rather than leaving it
// queued, lets the client see the refusal and try another collector, and keeps the process's file
// descriptors for the store.
func (c *Collector) LimitListener(lis net.Listener) net.Listener {
	return &limitListener{Listener: lis, g: c.conns}
}

type limitListener struct {
	net.Listener
	g *connGuard
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.g.active.Add(1); n > int64(l.g.max) {
			l.g.active.Add(-1)
			conn.Close()
			l.g.rejected(reasonLimit, conn.RemoteAddr(), nil)
			continue
		}
		l.g.m.conns.Inc()
		return &countedConn{Conn: conn, g: l.g}, nil
	}
}

// countedConn gives its place back once, on its first Close.
type countedConn struct {
	net.Conn
	g    *connGuard
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.g.active.Add(-1)
		c.g.m.conns.Dec()
	})
	return c.Conn.Close()
}

// guardedCreds counts the server handshakes that fail or time out (grpc.ConnectionTimeout sets the
// connection's deadline before the handshake).
type guardedCreds struct {
	credentials.TransportCredentials
	g *connGuard
}

func (gc guardedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := gc.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		reason := reasonHandshakeFailed
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			reason = reasonHandshakeTimeout
		}
		gc.g.rejected(reason, conn.RemoteAddr(), err)
	}
	return out, info, err
}

func (gc guardedCreds) Clone() credentials.TransportCredentials {
	return guardedCreds{TransportCredentials: gc.TransportCredentials.Clone(), g: gc.g}
}
