package sensor

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/flowfleet/flowfleet/internal/cli"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/sensor/capture"
	"github.com/flowfleet/flowfleet/internal/sensor/window"
)

// Configuration keys: each is a flag name, a config file key and, upper-cased with "-" → "_" behind
// FLOWFLEET_, an environment variable (FLOWFLEET_SPOOL_DIR for spool-dir).
const (
	KeyConfig           = "config"
	KeyCollector        = "collector"
	KeyInterface        = "interface"
	KeyExcludeInterface = "exclude-interface"
	KeyBPF              = "bpf"
	KeySnaplen          = "snaplen"
	KeyPromisc          = "promisc"
	KeyCapture          = "capture"
	KeyBufferBytes      = "buffer-bytes"
	KeyQueuePackets     = "queue-packets"
	KeyCert             = "cert"
	KeyKey              = "key"
	KeyCA               = "ca"
	KeyServerName       = "server-name"
	KeySpoolDir         = "spool-dir"
	KeySpoolMaxBytes    = "spool-max-bytes"
	KeyWindow           = "window"
	KeyBatchFlows       = "batch-flows"
	KeyBatchInterval    = "batch-interval"
	KeyMaxFlows         = "max-flows"
	KeyMaxInFlight      = "max-in-flight"
	KeyMetricsListen    = "metrics-listen"
	KeyLogFormat        = cli.FlagLogFormat
	KeyLogLevel         = cli.FlagLogLevel
	KeyShutdownTimeout  = "shutdown-timeout"
)

const longHelp = `sensor captures packets on this host, assembles them into bidirectional flows with FlowFleet's
flow engine (the same one as 'flowctl convert', with VLAN decoding and TLS SNI / HTTP Host naming on),
cuts them into windows of --window seconds aligned to the Unix epoch, and streams them to a FlowFleet
collector over mutual TLS.

Every batch of flows is written to the spool (--spool-dir) before it is sent and deleted only when a
collector acknowledges it, so restarts and collector outages lose nothing while the spool has room
(--spool-max-bytes; past it the oldest batches are dropped, counted and logged). With several
--collector addresses the sensor fails over to the next one when a stream breaks.

The sensor's own traffic to its collectors is left out of the capture automatically (a BPF clause
"not (host H and tcp port P)" per collector address, resolved at start, added to --bpf).

Capturing needs root or the CAP_NET_RAW and CAP_NET_ADMIN capabilities (see docs/sensor.md).

Settings come from flags, from FLOWFLEET_* environment variables (FLOWFLEET_SPOOL_DIR for --spool-dir,
lists comma-separated) and from a config file (--config, YAML, TOML or JSON, keys named like the
flags); a flag wins over the environment, which wins over the file.

SIGTERM or SIGINT: capture stops, the current window is flushed and spooled, and the sensor tries to
deliver it for up to --shutdown-timeout before exiting 0.`

const example = `  sensor --collector collector.example.net:7443 --interface eth0 \
    --cert /etc/flowfleet/sensor.pem --key /etc/flowfleet/sensor-key.pem --ca /etc/flowfleet/ca.pem \
    --spool-dir /var/lib/flowfleet-sensor --metrics-listen 127.0.0.1:9464

  FLOWFLEET_COLLECTOR=c1.example.net:7443,c2.example.net:7443 FLOWFLEET_INTERFACE=any sensor --config /etc/flowfleet/sensor.yaml`

// NewCommand builds the sensor command with its own viper instance. run is called with the parsed
// configuration; nil means RunCommand (capture until SIGTERM/SIGINT).
func NewCommand(run func(cmd *cobra.Command, cfg Config) error) *cobra.Command {
	vp := cli.NewViper()
	if run == nil {
		run = RunCommand
	}
	d := DefaultConfig()
	cmd := &cobra.Command{
		Use:           "sensor",
		Short:         "Capture packets, assemble flows and stream them to a FlowFleet collector",
		Long:          longHelp,
		Example:       example,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configFrom(vp, cmd.Flags())
			if err != nil {
				return err
			}
			return run(cmd, cfg)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.String(KeyConfig, "", "config file (YAML, TOML or JSON; keys named like the flags)")
	f.StringSlice(KeyCollector, nil, "collector address host:port; repeat or comma-separate for failover, tried in order (required)")
	f.StringSlice(KeyInterface, nil, `interface(s) to capture on, or "any" for all (required)`)
	f.StringSlice(KeyExcludeInterface, nil, `interface(s) to leave out, e.g. with --interface any`)
	f.String(KeyBPF, "", "capture filter, pcap-filter(7) syntax; combined with the sensor's own exclusion of its collector traffic")
	f.Int(KeySnaplen, d.Snaplen, "bytes captured per packet at most")
	f.Bool(KeyPromisc, false, "put the named interfaces in promiscuous mode")
	f.String(KeyCapture, string(d.Capture), "capture method: pcap (libpcap) or afpacket (Linux AF_PACKET TPACKET_V3)")
	f.String(KeyBufferBytes, "16MiB", "kernel capture buffer (pcap) or ring (afpacket) per interface")
	f.Int(KeyQueuePackets, d.QueuePackets, "packets queued between capture and the flow engine; when full, packets are dropped and counted")
	f.String(KeyCert, "", "client certificate file, PEM (required; reloaded when it changes)")
	f.String(KeyKey, "", "client private key file, PEM (required)")
	f.String(KeyCA, "", "CA bundle the collector's certificate must chain to, PEM (required)")
	f.String(KeyServerName, "", "name to verify the collector's certificate against (default: the host of each --collector address)")
	f.String(KeySpoolDir, "", "spool directory: unacknowledged batches, stream id, seq counter, name cache (required)")
	f.String(KeySpoolMaxBytes, "1GiB", "spool size limit (bytes, or with a unit: 512MiB, 2GiB); past it the oldest batches are dropped")
	f.Duration(KeyWindow, d.Window, "window length: whole seconds, 10s–24h; windows are aligned to multiples of it since the Unix epoch (a collector's window replaces it)")
	f.Int(KeyBatchFlows, d.BatchFlows, fmt.Sprintf("flows per batch at most (1–%d)", window.MaxBatchFlows))
	f.Duration(KeyBatchInterval, d.BatchInterval, "how often flows exported early (flow table full) are shipped")
	f.Int(KeyMaxFlows, d.MaxFlows, "flow table bound; when full, the least recently active flow is exported early")
	f.Int(KeyMaxInFlight, d.MaxInFlight, "batches sent and not yet acknowledged at most")
	f.String(KeyMetricsListen, "", `Prometheus metrics address, e.g. "127.0.0.1:9464" (off when empty); serves /metrics and /healthz`)
	cli.AddLogFlags(f)
	f.Duration(KeyShutdownTimeout, d.ShutdownTimeout, "on SIGTERM/SIGINT, how long to try delivering the last batches before exiting")

	// viper's Unmarshal and Get ignore AutomaticEnv for keys it has never seen (spf13/viper#522): every
	// key gets a default.
	f.VisitAll(func(fl *pflag.Flag) {
		vp.SetDefault(fl.Name, fl.DefValue)
	})
	for _, k := range []string{KeyCollector, KeyInterface, KeyExcludeInterface} {
		vp.SetDefault(k, []string{})
	}
	cli.AddVersion(cmd)
	return cmd
}

// configFrom layers the config file, the environment and the flags into a Config.
func configFrom(vp *viper.Viper, fs *pflag.FlagSet) (Config, error) {
	if err := vp.BindPFlags(fs); err != nil {
		return Config{}, err
	}
	if err := cli.ReadConfigFile(vp, vp.GetString(KeyConfig)); err != nil {
		return Config{}, err
	}
	var errs []string
	dur := func(k string) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(vp.GetString(k)))
		if err != nil {
			// a bare number in a file or the environment means seconds
			var n int64
			if _, serr := fmt.Sscanf(vp.GetString(k), "%d", &n); serr == nil && fmt.Sprint(n) == strings.TrimSpace(vp.GetString(k)) {
				return time.Duration(n) * time.Second
			}
			errs = append(errs, fmt.Sprintf("--%s: %v", k, err))
		}
		return d
	}
	size := func(k string) int64 {
		n, err := ParseBytes(vp.GetString(k))
		if err != nil {
			errs = append(errs, fmt.Sprintf("--%s: %v", k, err))
		}
		return n
	}
	method, err := capture.ParseMethod(vp.GetString(KeyCapture))
	if err != nil {
		errs = append(errs, "--capture: "+err.Error())
	}
	cfg := Config{
		Collectors:        splitList(vp.GetStringSlice(KeyCollector)),
		Interfaces:        splitList(vp.GetStringSlice(KeyInterface)),
		ExcludeInterfaces: splitList(vp.GetStringSlice(KeyExcludeInterface)),
		BPF:               vp.GetString(KeyBPF),
		Snaplen:           vp.GetInt(KeySnaplen),
		Promisc:           vp.GetBool(KeyPromisc),
		Capture:           method,
		BufferBytes:       int(size(KeyBufferBytes)),
		QueuePackets:      vp.GetInt(KeyQueuePackets),
		CertFile:          vp.GetString(KeyCert),
		KeyFile:           vp.GetString(KeyKey),
		CAFile:            vp.GetString(KeyCA),
		ServerName:        vp.GetString(KeyServerName),
		SpoolDir:          vp.GetString(KeySpoolDir),
		SpoolMaxBytes:     size(KeySpoolMaxBytes),
		Window:            dur(KeyWindow),
		BatchFlows:        vp.GetInt(KeyBatchFlows),
		BatchInterval:     dur(KeyBatchInterval),
		MaxFlows:          vp.GetInt(KeyMaxFlows),
		MaxInFlight:       vp.GetInt(KeyMaxInFlight),
		MetricsListen:     vp.GetString(KeyMetricsListen),
		LogFormat:         vp.GetString(KeyLogFormat),
		LogLevel:          vp.GetString(KeyLogLevel),
		ShutdownTimeout:   dur(KeyShutdownTimeout),
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// RunCommand is the sensor command's default action: it builds the logger from cfg and runs the sensor
// until the command's context ends (cmd/sensor cancels it on SIGTERM or SIGINT).
func RunCommand(cmd *cobra.Command, cfg Config) error {
	log, err := logx.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	return Run(cmd.Context(), cfg, Options{Logger: log})
}
