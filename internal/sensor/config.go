package sensor

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/sensor/capture"
	"github.com/flowfleet/flowfleet/internal/sensor/spool"
	"github.com/flowfleet/flowfleet/internal/sensor/window"
)

// Config is everything a sensor needs; DefaultConfig gives the defaults and Validate checks it.
type Config struct {
	// Collectors are the collector addresses, host:port, used in order with failover (round robin).
	Collectors []string
	// Interfaces to capture on ("any" for all).
	Interfaces []string
	// ExcludeInterfaces are left out (see capture.Expand).
	ExcludeInterfaces []string
	// BPF is the user's capture filter; the sensor adds a clause excluding its own collector traffic.
	BPF string
	// Snaplen is the most bytes captured per packet.
	Snaplen int
	// Promisc puts named interfaces in promiscuous mode.
	Promisc bool
	// Capture is the capture method.
	Capture capture.Method
	// BufferBytes is the kernel capture buffer (pcap) or ring (afpacket) per interface.
	BufferBytes int
	// QueuePackets bounds the queue between capture and the engine.
	QueuePackets int

	// CertFile, KeyFile and CAFile are the sensor's mTLS material (reloaded at each handshake).
	CertFile, KeyFile, CAFile string
	// ServerName is checked against the collector's certificate; "" means the host of each address.
	ServerName string

	// SpoolDir holds the spool, the stream id, the seq counter and the name cache (names.txt).
	SpoolDir string
	// SpoolMaxBytes bounds the spool.
	SpoolMaxBytes int64

	// Window is the window length W.
	Window time.Duration
	// BatchFlows is the most flows per batch.
	BatchFlows int
	// BatchInterval is how often flows exported early (table full) are shipped.
	BatchInterval time.Duration
	// MaxFlows bounds the flow table.
	MaxFlows int
	// MaxInFlight bounds the batches sent and not yet acknowledged.
	MaxInFlight int

	// MetricsListen is the Prometheus endpoint's address ("" for none).
	MetricsListen string
	// LogFormat is text or json; LogLevel debug, info, warn or error.
	LogFormat, LogLevel string
	// ShutdownTimeout bounds the shipping of the last batches at shutdown.
	ShutdownTimeout time.Duration
}

// Defaults.
const (
	DefaultSpoolMaxBytes   = spool.DefaultMaxBytes
	DefaultBatchInterval   = time.Second
	DefaultMaxFlows        = 1_000_000
	DefaultShutdownTimeout = 10 * time.Second
	NameCacheFile          = "names.txt"
)

// DefaultConfig returns a Config with every default set and nothing required filled in.
func DefaultConfig() Config {
	return Config{
		Snaplen:         capture.DefaultSnaplen,
		Capture:         capture.MethodPcap,
		BufferBytes:     capture.DefaultBufferBytes,
		QueuePackets:    capture.DefaultQueuePackets,
		SpoolMaxBytes:   DefaultSpoolMaxBytes,
		Window:          window.DefaultWindow,
		BatchFlows:      window.DefaultBatchFlows,
		BatchInterval:   DefaultBatchInterval,
		MaxFlows:        DefaultMaxFlows,
		MaxInFlight:     64,
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// Validate checks c and returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Collectors) == 0 {
		bad("--collector: at least one collector address (host:port) is required")
	}
	for _, a := range c.Collectors {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			bad("--collector %q: want host:port", a)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad("--collector %q: port must be 1–65535", a)
		}
	}
	if len(c.Interfaces) == 0 {
		bad("--interface: at least one interface (or \"any\") is required")
	}
	if c.Snaplen < 64 || c.Snaplen > 262144 {
		bad("--snaplen %d: must be 64–262144", c.Snaplen)
	}
	if _, err := capture.ParseMethod(string(c.Capture)); err != nil {
		bad("--capture: %v", err)
	}
	if c.BufferBytes < 1<<20 {
		bad("--buffer-bytes %d: at least 1 MiB", c.BufferBytes)
	}
	if c.QueuePackets < 1 {
		bad("--queue-packets %d: at least 1", c.QueuePackets)
	}
	if c.CertFile == "" || c.KeyFile == "" || c.CAFile == "" {
		bad("--cert, --key and --ca are required (the sensor's mTLS certificate, its key and the CA bundle)")
	}
	if c.SpoolDir == "" {
		bad("--spool-dir is required")
	}
	if c.SpoolMaxBytes < 1<<20 {
		bad("--spool-max-bytes %d: at least 1 MiB", c.SpoolMaxBytes)
	}
	if c.Window%time.Second != 0 || c.Window < 10*time.Second || c.Window > 24*time.Hour {
		bad("--window %s: must be whole seconds, 10s–24h", c.Window)
	}
	if c.BatchFlows < 1 || c.BatchFlows > window.MaxBatchFlows {
		bad("--batch-flows %d: must be 1–%d", c.BatchFlows, window.MaxBatchFlows)
	}
	if c.BatchInterval < 10*time.Millisecond || c.BatchInterval > time.Hour {
		bad("--batch-interval %s: must be 10ms–1h", c.BatchInterval)
	}
	if c.MaxFlows < 1 {
		bad("--max-flows %d: at least 1", c.MaxFlows)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1024 {
		bad("--max-in-flight %d: must be 1–1024", c.MaxInFlight)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("--log-format %q: want text or json", c.LogFormat)
	}
	if _, err := logx.ParseLevel(c.LogLevel); err != nil {
		bad("--log-level: %v", err)
	}
	if c.ShutdownTimeout < 0 {
		bad("--shutdown-timeout %s: must not be negative", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// ParseBytes reads a size: a plain number of bytes, or a number with a unit (k, KB, KiB, M, MB, MiB,
// G, GB, GiB, T…; the binary and decimal forms are both taken as powers of 1024 for k/M/G/T without
// "B", as in "512M").
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with a unit (MiB, GiB, …)", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	var mul int64
	switch unit {
	case "", "b":
		mul = 1
	case "k", "kib", "ki":
		mul = 1 << 10
	case "kb":
		mul = 1000
	case "m", "mib", "mi":
		mul = 1 << 20
	case "mb":
		mul = 1000 * 1000
	case "g", "gib", "gi":
		mul = 1 << 30
	case "gb":
		mul = 1000 * 1000 * 1000
	case "t", "tib", "ti":
		mul = 1 << 40
	case "tb":
		mul = 1000 * 1000 * 1000 * 1000
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	if n > (1<<62)/mul {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mul, nil
}

// splitList splits comma- or space-separated values (flags, environment variables and config files
// all end up here) and drops empty ones.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
			out = append(out, part)
		}
	}
	return out
}
