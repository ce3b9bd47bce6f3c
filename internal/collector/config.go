package collector

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/sink"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Config is the collector's configuration: New fills in the defaults (setDefaults) and checks it
// (Validate). The command (command.go) builds it from flags, FLOWFLEET_* variables and the config file;
// each part of the collector reads its own sub-struct: Limits (ingest), Listener (the gRPC server's
// connections), Relay (the NetworkSage worker), and the closer's and the store's parts
// (closerConfig, windowLimits).
type Config struct {
	// DataDir is where sample files are written (DataDir/samples/<host>_<start>.bf).
	DataDir string
	// Window is the window length every sensor must use (default 300 s).
	Window time.Duration
	// Grace is how long after a window's end (or its last late batch) a window with no end mark closes
	// (default 60 s).
	Grace time.Duration
	// TrustDomain is the SPIFFE trust domain of certificates (default flowfleet.local).
	TrustDomain string
	// Name identifies this collector in the hosts table (default: the machine's host name).
	Name string
	// CommitDelay bounds how long a batch waits for others to share its transaction (default 2 ms).
	CommitDelay time.Duration
	// CloseInterval is how often due windows are looked for (default 1 s).
	CloseInterval time.Duration
	// Listener bounds the gRPC server's connections and streams (server.go, conns.go).
	Listener Listener
	// Relay configures the NetworkSage relay (relay.go); with no API key it is off.
	Relay relay.Config
	// Sink configures the message-bus sink (sink.go, docs/sink.md); with no URL it is off.
	Sink sink.Config
	// Retention: the samples of windows that ended longer ago than this are deleted (store rows and
	// .bf files, every revision). 0 keeps them forever.
	Retention time.Duration
	// BatchRetention: the raw batches of closed windows that ended (and got their last batch) longer
	// ago than this are deleted; a late batch then builds on the window's sample. 0 keeps them until
	// the window's samples go. At most Retention when both are set.
	BatchRetention time.Duration
	// PruneInterval is how often the pruner runs (default: a tenth of the shorter retention, between
	// 10 s and 1 h); it also runs once at start.
	PruneInterval time.Duration
	// PruneMaxWindows and PruneMaxFlows bound one pruning transaction (store defaults when 0).
	PruneMaxWindows int
	PruneMaxFlows   int64
	// Now is the retention clock (tests); default time.Now.
	Now func() time.Time

	// Limits are the ingest limits (limits.go, ingest.go).
	Limits Limits
	// MaxWindowFlows and MaxWindowBytes bound one window (one host's flows of one window, every
	// revision): flows past either bound are dropped, counted (flowfleet_collector_window_flows_dropped_total,
	// the sample's flows_dropped) and logged once per window; their batch is still acknowledged.
	// Defaults 1,000,000 flows and 256 MiB of encoded flows; negative means no bound (docs/limits.md).
	MaxWindowFlows int64
	MaxWindowBytes int64
	// CloseRetryMin and CloseRetryMax bound the backoff between the attempts to close a window whose
	// sample cannot be written: CloseRetryMin after the first failure, doubling up to CloseRetryMax
	// (defaults 2 s and 10 min). Other windows close meanwhile.
	CloseRetryMin time.Duration
	CloseRetryMax time.Duration
}

func (c *Config) setDefaults() {
	if c.Sink.Enabled() {
		c.Sink.SetDefaults()
	}
	if c.Window == 0 {
		c.Window = 300 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 60 * time.Second
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "flowfleet.local"
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.CommitDelay == 0 {
		c.CommitDelay = 2 * time.Millisecond
	}
	if c.CloseInterval == 0 {
		c.CloseInterval = time.Second
	}
	if c.Listener.MaxStreams == 0 {
		c.Listener.MaxStreams = 4096
	}
	if c.Listener.HandshakeTimeout == 0 {
		c.Listener.HandshakeTimeout = 10 * time.Second
	}
	if c.Listener.MaxConnections == 0 {
		c.Listener.MaxConnections = defaultMaxConnections()
	}
	if c.MaxWindowFlows == 0 {
		c.MaxWindowFlows = DefaultMaxWindowFlows
	}
	if c.MaxWindowBytes == 0 {
		c.MaxWindowBytes = DefaultMaxWindowBytes
	}
	if c.CloseRetryMin <= 0 {
		c.CloseRetryMin = 2 * time.Second
	}
	if c.CloseRetryMax <= 0 {
		c.CloseRetryMax = 10 * time.Minute
	}
	c.CloseRetryMax = max(c.CloseRetryMax, c.CloseRetryMin)
	if c.Limits.MaxStreamsPerHost <= 0 {
		c.Limits.MaxStreamsPerHost = DefaultMaxStreamsPerHost
	}
	if c.Limits.IdleTimeout <= 0 {
		c.Limits.IdleTimeout = max(DefaultMinIdleTimeout, 2*c.Window+c.Grace)
	}
	if c.Limits.HelloTimeout <= 0 {
		c.Limits.HelloTimeout = DefaultHelloTimeout
	}
	if c.Limits.MaxFlowAge == 0 {
		c.Limits.MaxFlowAge = DefaultMaxFlowAge
	}
	if c.Limits.MaxFlowAhead == 0 {
		c.Limits.MaxFlowAhead = DefaultMaxFlowAhead
	}
}

// The per-window bounds' defaults (Config.MaxWindowFlows, MaxWindowBytes). A million flows is the
// sensor's flow table bound (--max-flows), so a default sensor's window fits. 256 MiB of encoded flows
// holds a million flows with names of up to about 150 bytes, and bounds the memory of closing a window:
// the collector's resident memory grew by about 7 times the window's encoded flows while closing it
// (bench/README.md, Closing a window), so a window at the bound needs about 1.8 GiB.
const (
	DefaultMaxWindowFlows = 1_000_000
	DefaultMaxWindowBytes = 256 << 20
)

// Validate checks a configuration whose defaults are set (setDefaults); it also fills in the pruning
// interval when none is set (checkRetention).
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("collector: no data directory")
	}
	if c.Listener.HandshakeTimeout < 0 || c.Listener.MaxConnections < 0 {
		return errors.New("collector: negative handshake timeout or connection limit")
	}
	if c.Window < 10*time.Second || c.Window > 24*time.Hour || c.Window%time.Second != 0 {
		return fmt.Errorf("collector: window %s must be whole seconds between 10s and 24h", c.Window)
	}
	if err := c.Sink.Validate(); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	return c.checkRetention()
}

// windowLimits is the store's form of the per-window bound.
func (c *Config) windowLimits() store.WindowLimits {
	return store.WindowLimits{MaxFlows: max(c.MaxWindowFlows, 0), MaxBytes: max(c.MaxWindowBytes, 0)}
}

// Limits are the ingest limits (docs/limits.md, section Ingest), enforced in limits.go and ingest.go.
type Limits struct {
	// MaxStreamsPerHost bounds the ingest streams one host (certificate) may hold open on this
	// collector at once (default 4): a sensor needs one, plus one while a lost connection is detected.
	MaxStreamsPerHost int
	// OneStreamPerHost refuses a host's stream while another with a different stream id is open
	// (FAILED_PRECONDITION): two sensors sharing one certificate. Off by default: such streams are
	// counted (flowfleet_collector_host_stream_conflicts_total) and logged.
	OneStreamPerHost bool
	// IdleTimeout closes an ingest stream that sends no message for this long (UNAVAILABLE; the sensor
	// reconnects). Default: the longer of 15 minutes and 2 windows + grace, because a sensor with
	// traffic sends at least one batch per window and one that sees none sends nothing.
	IdleTimeout time.Duration
	// HelloTimeout closes a stream whose hello does not come within it (default 30 s).
	HelloTimeout time.Duration
	// MaxFlowAge and MaxFlowAhead are the skew window around the collector's clock that flow times
	// (first_seen, last_seen, window_start) and window-end times must fall into; a batch outside it is
	// refused with INVALID_ARGUMENT naming the field. Defaults 30 days and 1 hour; negative means
	// unbounded on that side.
	MaxFlowAge   time.Duration
	MaxFlowAhead time.Duration
}

// Listener bounds the gRPC server's connections (conns.go) and streams (server.go).
type Listener struct {
	// MaxStreams bounds concurrent gRPC streams per connection (default 4096).
	MaxStreams uint32
	// HandshakeTimeout is how long a new connection may take to finish its TLS handshake (and HTTP/2
	// preface) before it is closed (default 10 s; conns.go).
	HandshakeTimeout time.Duration
	// MaxConnections bounds the gRPC listener's open connections (LimitListener); default 10,000, or
	// the open-file limit less a reserve for the store when that is lower.
	MaxConnections int
}
