package sensor_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowfleet/flowfleet/internal/sensor"
	"github.com/flowfleet/flowfleet/internal/sensor/capture"
)

var required = []string{"--collector", "c1:7443", "--interface", "eth0", "--cert", "c.pem", "--key", "k.pem", "--ca", "ca.pem",
	"--spool-dir", "/tmp/spool"}

func parse(t *testing.T, env map[string]string, args ...string) (sensor.Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var got sensor.Config
	cmd := sensor.NewCommand(func(_ *cobra.Command, cfg sensor.Config) error { got = cfg; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.ExecuteContext(context.Background())
	return got, err
}

func TestCommandDefaults(t *testing.T) {
	cfg, err := parse(t, nil, required...)
	if err != nil {
		t.Fatal(err)
	}
	d := sensor.DefaultConfig()
	if cfg.Snaplen != 65535 || cfg.SpoolMaxBytes != 1<<30 || cfg.Window != 300*time.Second || cfg.BatchFlows != 5000 ||
		cfg.BatchInterval != time.Second || cfg.MaxFlows != 1_000_000 || cfg.ShutdownTimeout != 10*time.Second ||
		cfg.Capture != capture.MethodPcap || cfg.MetricsListen != "" || cfg.LogFormat != "text" || cfg.Promisc ||
		cfg.BufferBytes != d.BufferBytes || cfg.QueuePackets != d.QueuePackets || cfg.MaxInFlight != 64 {
		t.Errorf("defaults: %+v", cfg)
	}
	if !slices.Equal(cfg.Collectors, []string{"c1:7443"}) || !slices.Equal(cfg.Interfaces, []string{"eth0"}) {
		t.Errorf("lists: %+v", cfg)
	}
}

func TestCommandEnvironmentAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sensor.yaml")
	if err := os.WriteFile(file, []byte(`collector: [file1:1, file2:2]
interface: any
exclude-interface: [lo, docker0]
window: 60
spool-max-bytes: 512MiB
batch-flows: 100
bpf: "not port 22"
capture: afpacket
cert: /f/cert.pem
key: /f/key.pem
ca: /f/ca.pem
spool-dir: /var/lib/x
log-format: json
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, nil, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Collectors, []string{"file1:1", "file2:2"}) || !slices.Equal(cfg.Interfaces, []string{"any"}) ||
		!slices.Equal(cfg.ExcludeInterfaces, []string{"lo", "docker0"}) || cfg.Window != time.Minute ||
		cfg.SpoolMaxBytes != 512<<20 || cfg.BatchFlows != 100 || cfg.BPF != "not port 22" || cfg.Capture != capture.MethodAFPacket ||
		cfg.LogFormat != "json" {
		t.Errorf("from file: %+v", cfg)
	}
	// The environment wins over the file, a flag over the environment.
	cfg, err = parse(t, map[string]string{"FLOWFLEET_COLLECTOR": "env1:1,env2:2", "FLOWFLEET_BATCH_FLOWS": "200",
		"FLOWFLEET_SPOOL_DIR": "/env/spool", "FLOWFLEET_WINDOW": "120s"}, "--config", file, "--batch-flows", "300")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Collectors, []string{"env1:1", "env2:2"}) || cfg.BatchFlows != 300 || cfg.SpoolDir != "/env/spool" ||
		cfg.Window != 2*time.Minute {
		t.Errorf("layering: %+v", cfg)
	}
}

func TestCommandValidation(t *testing.T) {
	_, err := parse(t, nil)
	if err == nil {
		t.Fatal("no error without required settings")
	}
	for _, want := range []string{"--collector", "--interface", "--cert", "--spool-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	for _, bad := range [][]string{
		{"--window", "90500ms"}, {"--window", "5s"}, {"--batch-flows", "20000"}, {"--capture", "netmap"},
		{"--spool-max-bytes", "12 parsecs"}, {"--log-format", "xml"}, {"--collector", "no-port"},
	} {
		if _, err := parse(t, nil, append(slices.Clone(required), bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	cmd := sensor.NewCommand(nil)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--collector", "--interface", "--exclude-interface", "--bpf", "--snaplen", "--promisc", "--capture",
		"--cert", "--key", "--ca", "--server-name", "--spool-dir", "--spool-max-bytes", "--window", "--batch-flows",
		"--batch-interval", "--max-flows", "--metrics-listen", "--log-format", "--shutdown-timeout", "--config", "FLOWFLEET_"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1073741824": 1 << 30, "1GiB": 1 << 30, "512MiB": 512 << 20, "512M": 512 << 20, "10kb": 10000, "2 GB": 2e9} {
		if got, err := sensor.ParseBytes(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "1 parsec", "99999999999999999999"} {
		if _, err := sensor.ParseBytes(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
