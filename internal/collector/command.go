package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/buildinfo"
	"github.com/flowfleet/flowfleet/internal/cli"
	"github.com/flowfleet/flowfleet/internal/flowindex"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/sink"
	"github.com/flowfleet/flowfleet/internal/store"
)

// NewCommand builds the collector's command line: flags, FLOWFLEET_* environment variables and an
// optional config file, layered by viper.
func NewCommand() *cobra.Command {
	vp := cli.NewViper()
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Run a FlowFleet collector: ingest flows from sensors, write samples, answer queries",
		Long: `The collector accepts flow batches from sensors over mutual-TLS gRPC, acknowledges each batch once it
is durable in the store, closes every host's windows into samples (BayseFlow files under --data-dir,
named <host>_<window start>.bf) and answers flowctl and any gRPC client.

Samples are kept for --retention (30 days by default; 0 keeps them forever) and the raw flow batches
of closed windows for --batch-retention (1 day): see docs/retention.md.

Every client needs a certificate from the fleet's CA (flowctl certs): sensors with role sensor,
queriers with role reader, admin for both. The server certificate and CA bundle are re-read when their
files change.

Settings: flags, FLOWFLEET_<FLAG> environment variables (FLOWFLEET_DATA_DIR for --data-dir) and
--config FILE (YAML, TOML or JSON with the flag names as keys).`,
		Example: `  collector --cert collector.pem --key collector-key.pem --ca ca.pem --data-dir /var/lib/flowfleet
  collector --store postgres://flowfleet@db/flowfleet --listen :7443 ...`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := vp.BindPFlags(cmd.Flags()); err != nil {
				return err
			}
			if err := cli.ReadConfigFile(vp, vp.GetString("config")); err != nil {
				return err
			}
			set, err := settingsFrom(vp)
			if err != nil {
				return err
			}
			return run(cmd.Context(), set)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "config file")
	f.String("listen", ":7443", "gRPC listen address (mutual TLS)")
	f.String("metrics-listen", "127.0.0.1:9464", `plain-HTTP listen address of /metrics (Prometheus), /healthz (liveness) and /readyz (readiness: the store takes writes); "" turns them off`)
	f.String("data-dir", "flowfleet-data", "directory for samples (and the SQLite store)")
	f.String("store", "", `store: a SQLite file path, or postgres://… (default: <data-dir>/flowfleet.db)`)
	f.Duration("window", 300*time.Second, "window length; sensors must use the same")
	f.Duration("grace", 60*time.Second, "how long after a window's end a silent sensor's window is closed")
	f.Duration("retention", 720*time.Hour, "delete samples (store rows and .bf files) of windows that ended longer ago than this; 0 keeps them forever")
	f.Duration("batch-retention", 24*time.Hour, "delete the stored flow batches of closed windows this long after their end (a later batch then builds on the window's sample); 0 keeps them until --retention; at most --retention")
	f.Int64("max-window-flows", DefaultMaxWindowFlows, "most flows one host's window keeps; later flows of the window are dropped and counted (the sample's flows_dropped); -1: no bound")
	f.Int64("max-window-bytes", DefaultMaxWindowBytes, "most bytes of encoded flows one host's window keeps (bounds the memory of closing it); later flows are dropped and counted; -1: no bound")
	f.String("cert", "", "server certificate (PEM), e.g. from: flowctl certs issue --role collector")
	f.String("key", "", "server private key (PEM)")
	f.String("ca", "", "CA bundle that client certificates must chain to (PEM)")
	f.String("trust-domain", auth.DefaultTrustDomain, "SPIFFE trust domain of the fleet's certificates")
	f.String("name", "", "this collector's name in the hosts table (default: the machine's host name)")
	f.Duration("shutdown-timeout", 15*time.Second, "how long a SIGTERM waits for streams to finish")
	f.Duration("handshake-timeout", 10*time.Second, "close a connection that has not finished its TLS handshake after this long")
	f.Int("max-connections", 0, "most gRPC connections open at once; more are closed at once (0: 10,000, or the open-file limit less 256 when lower)")
	f.String("networksage-url", relay.DefaultBaseURL, "NetworkSage API base URL the relay uploads samples to")
	f.String("networksage-api-key-file", "", "file holding the NetworkSage API key (else FLOWFLEET_NETWORKSAGE_API_KEY or networksage-api-key in --config); with no key the relay is off")
	f.String("networksage-type", relay.DefaultType, "upload type sent with each sample: secflow, pcap, pcapng, zeek or interflow")
	f.Int("relay-concurrency", relay.DefaultConcurrency, "NetworkSage requests in flight at once (uploads, polls and enrichment)")
	f.Duration("networksage-poll-interval", relay.DefaultPollInterval, "how often NetworkSage is asked whether an uploaded sample is processed, and whether its summary and categorization are generated (at least 1s; below 15s only for tests)")
	f.Duration("networksage-report-deadline", relay.DefaultReportDeadline, "how long to wait for a processed sample's summary and categorization before marking it enrichment_failed")
	f.String("sink", "", "publish every sample's flows to a message bus (docs/sink.md): redis://HOST:PORT or rediss:// (TLS) for Redis Streams, nats://HOST:PORT or tls:// (TLS) for NATS JetStream; off when empty")
	f.String("sink-stream", sink.DefaultStream, "Redis stream key, or JetStream stream name (created for --sink-subject when missing)")
	f.String("sink-subject", sink.DefaultSubject, "NATS subject the sink publishes on")
	f.String("sink-cert", "", "client certificate for a TLS sink (rediss://, tls://)")
	f.String("sink-key", "", "key of --sink-cert")
	f.String("sink-ca", "", "CA bundle the TLS sink's server certificate must chain to")
	f.Int("sink-max-in-flight", sink.DefaultMaxInFlight, "sink messages sent and not yet acknowledged by the bus, at most")
	f.Int("max-streams-per-host", DefaultMaxStreamsPerHost, "ingest streams one host (certificate) may hold open at once on this collector")
	f.Bool("one-stream-per-host", false, "refuse a host's ingest stream while another with a different stream id is open (two sensors sharing one certificate); without it they are logged and counted")
	f.Duration("stream-idle-timeout", 0, "close an ingest stream that sends nothing for this long (default: the longer of 15m and 2 windows + grace)")
	f.Duration("hello-timeout", DefaultHelloTimeout, "close an ingest stream whose hello does not come within this time")
	f.Duration("max-flow-age", DefaultMaxFlowAge, "refuse flows and window ends older than this by the collector's clock (0: no bound; keep it at least the sensors' longest outage)")
	f.Duration("max-flow-ahead", DefaultMaxFlowAhead, "refuse flows and window ends further than this ahead of the collector's clock (0: no bound)")
	cli.AddLogFlags(f)
	cli.AddVersion(cmd)
	return cmd
}

// metricsMaxConns bounds the metrics listener's connections: Prometheus, the probes and a few
// people's curls.
const metricsMaxConns = 64

// listen opens the gRPC listener (a test swaps it to make Serve fail).
var listen = net.Listen

// settings is the command's typed configuration: the collector's Config, and what the command itself
// wires (TLS files, store, listeners, logging, shutdown). settingsFrom builds it from the settings tree;
// nothing below the command sees viper.
type settings struct {
	Collector       Config
	TLS             auth.Files
	Store           string // the store's DSN
	Listen          string
	MetricsListen   string
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        string
}

// settingsFrom reads the command's settings (flags, FLOWFLEET_* variables, config file) into settings.
func settingsFrom(vp *viper.Viper) (settings, error) {
	set := settings{
		TLS:   auth.Files{CertFile: vp.GetString("cert"), KeyFile: vp.GetString("key"), CAFile: vp.GetString("ca")},
		Store: vp.GetString("store"), Listen: vp.GetString("listen"), MetricsListen: vp.GetString("metrics-listen"),
		ShutdownTimeout: vp.GetDuration("shutdown-timeout"), LogFormat: vp.GetString(cli.FlagLogFormat), LogLevel: vp.GetString(cli.FlagLogLevel),
	}
	relayCfg, err := relayConfig(vp)
	if err != nil {
		return set, err
	}
	retention, batchRetention := vp.GetDuration("retention"), vp.GetDuration("batch-retention")
	if !vp.IsSet("batch-retention") && retention > 0 && batchRetention > retention {
		batchRetention = retention // a shorter --retention alone shortens the default batch retention too
	}
	set.Collector = Config{DataDir: vp.GetString("data-dir"), Window: vp.GetDuration("window"), Grace: vp.GetDuration("grace"),
		TrustDomain: vp.GetString("trust-domain"), Name: vp.GetString("name"), Relay: relayCfg, Sink: sinkConfig(vp),
		Retention: retention, BatchRetention: batchRetention,
		MaxWindowFlows: vp.GetInt64("max-window-flows"), MaxWindowBytes: vp.GetInt64("max-window-bytes"),
		Listener: Listener{HandshakeTimeout: vp.GetDuration("handshake-timeout"), MaxConnections: vp.GetInt("max-connections")},
		Limits: Limits{MaxStreamsPerHost: vp.GetInt("max-streams-per-host"), OneStreamPerHost: vp.GetBool("one-stream-per-host"),
			IdleTimeout: vp.GetDuration("stream-idle-timeout"), HelloTimeout: vp.GetDuration("hello-timeout"),
			MaxFlowAge: unboundedIfZero(vp.GetDuration("max-flow-age")), MaxFlowAhead: unboundedIfZero(vp.GetDuration("max-flow-ahead"))},
	}
	if set.Store == "" {
		set.Store = filepath.Join(set.Collector.DataDir, "flowfleet.db")
	}
	return set, nil
}

func run(ctx context.Context, set settings) error {
	log, err := logx.New(os.Stderr, set.LogFormat, set.LogLevel)
	if err != nil {
		return err
	}
	files := set.TLS
	for _, fp := range [][2]string{{"--cert", files.CertFile}, {"--key", files.KeyFile}, {"--ca", files.CAFile}} {
		flag, path := fp[0], fp[1]
		if path == "" {
			return fmt.Errorf("%s is required (make certificates with: flowctl certs init && flowctl certs issue --role collector --name NAME)", flag)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	creds, err := auth.NewServerCredentials(files, log)
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	dataDir := set.Collector.DataDir
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	dsn := set.Store
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	if info, err := st.Stats(ctx); err != nil {
		return err
	} else if info.Created {
		log.Info("store: created a new store", "backend", info.Backend, "store", redactDSN(dsn))
	} else {
		log.Info("store: opened an existing store", "backend", info.Backend, "store", redactDSN(dsn), "samples", info.Samples)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.NewCollector("collector"))
	c, err := New(st, set.Collector, log, reg)
	if err != nil {
		return err
	}
	srv, hs, err := c.NewGRPCServer(creds)
	if err != nil {
		return err
	}
	lis, err := listen("tcp", set.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	lis = c.LimitListener(lis)
	var metricsSrv *http.Server
	var mlis net.Listener
	if addr := set.MetricsListen; addr != "" {
		mlis, err = net.Listen("tcp", addr)
		if err != nil {
			lis.Close()
			return fmt.Errorf("metrics listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		health := c.HealthHandler()
		mux.Handle("/healthz", health)
		mux.Handle("/readyz", health)
		// The metrics listener is reachable from the pod network now that probes use it: a client holding
		// idle connections must not use up the process's file descriptors (they come out of the 256 kept
		// from --max-connections) nor keep the probes out for long.
		mlis = netutil.LimitListener(mlis, metricsMaxConns)
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
		log.Info("metrics listening", "addr", mlis.Addr().String(), "paths", "/metrics /healthz /readyz")
	}

	// Every long-lived goroutine runs in one group: the first to fail cancels gctx, which starts the
	// same shutdown as SIGTERM, and run returns that failure once every goroutine has ended.
	g, gctx := errgroup.WithContext(ctx)
	// The collector's loops stop last, after the gRPC server: batches received before it stopped are
	// still committed and acknowledged.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g.Go(func() error {
		if err := c.Run(runCtx); err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		c.WatchHealth(gctx, hs, 5*time.Second) // NOT_SERVING as soon as shutdown starts
		return nil
	})
	g.Go(func() error {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil // stopped by the shutdown below (perhaps before it started)
	})
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
	}
	// Fleet search: index stored samples, old ones included (docs/search.md).
	g.Go(func() error {
		return (&flowindex.Indexer{Store: st, Log: log.With("component", "flowindex")}).Run(gctx)
	})
	g.Go(func() error {
		<-gctx.Done()
		if ctx.Err() != nil {
			log.Info("shutting down: finishing in-flight batches")
		} else {
			log.Error("shutting down after a failure: finishing in-flight batches", "err", context.Cause(gctx))
		}
		c.Drain()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(set.ShutdownTimeout):
			log.Warn("streams did not finish in time; closing them")
			srv.Stop()
			<-stopped
		}
		stopRun()
		if metricsSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := metricsSrv.Shutdown(sctx); err != nil {
				metricsSrv.Close()
			}
		}
		return nil
	})
	log.Info("collector listening", "addr", lis.Addr().String(), "store", redactDSN(dsn), "data_dir", dataDir,
		"window", set.Collector.Window, "grace", set.Collector.Grace,
		"handshake_timeout", c.cfg.Listener.HandshakeTimeout, "max_connections", c.cfg.Listener.MaxConnections)
	if err := g.Wait(); err != nil {
		return err // main prints it and exits 1
	}
	log.Info("collector stopped")
	return nil
}

// unboundedIfZero maps a flag's 0 ("no bound") to the Config's negative value (0 there is the default).
func unboundedIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// sinkConfig reads the message-bus sink's settings (--sink…).
func sinkConfig(vp *viper.Viper) sink.Config {
	return sink.Config{URL: vp.GetString("sink"), Stream: vp.GetString("sink-stream"), Subject: vp.GetString("sink-subject"),
		CertFile: vp.GetString("sink-cert"), KeyFile: vp.GetString("sink-key"), CAFile: vp.GetString("sink-ca"),
		MaxInFlight: vp.GetInt("sink-max-in-flight")}
}

// relayConfig reads the relay's settings: --networksage-url, --networksage-type, --relay-concurrency,
// --networksage-poll-interval, --networksage-report-deadline,
// and the key from --networksage-api-key-file, else FLOWFLEET_NETWORKSAGE_API_KEY or
// networksage-api-key in the config file. There is deliberately no flag that takes the key itself: a
// command line is visible to every user of the machine.
func relayConfig(vp *viper.Viper) (relay.Config, error) {
	cfg := relay.Config{BaseURL: vp.GetString("networksage-url"), Type: vp.GetString("networksage-type"),
		Concurrency: vp.GetInt("relay-concurrency"), PollInterval: vp.GetDuration("networksage-poll-interval"),
		ReportDeadline: vp.GetDuration("networksage-report-deadline")}
	if cfg.PollInterval < time.Second {
		return cfg, fmt.Errorf("--networksage-poll-interval %s: want at least 1s", cfg.PollInterval)
	}
	if cfg.ReportDeadline < cfg.PollInterval {
		return cfg, fmt.Errorf("--networksage-report-deadline %s: want at least the poll interval (%s)", cfg.ReportDeadline, cfg.PollInterval)
	}
	if path := vp.GetString("networksage-api-key-file"); path != "" {
		key, err := relay.KeyFromFile(path)
		if err != nil {
			return cfg, err
		}
		cfg.APIKey = key
	} else {
		cfg.APIKey = relay.Secret(strings.TrimSpace(vp.GetString("networksage-api-key")))
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > relay.MaxConcurrency {
		return cfg, fmt.Errorf("--relay-concurrency %d: want 1 to %d", cfg.Concurrency, relay.MaxConcurrency)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// redactDSN hides a PostgreSQL password in logs.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if colon := strings.Index(dsn[i+3:at], ":"); colon >= 0 {
				return dsn[:i+3+colon] + ":***" + dsn[at:]
			}
		}
	}
	return dsn
}
