package sink

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/promtest"
)

// The sink's metrics keep their exported names and pass promlint; failures has a child per reason from
// the start (a fixed label set), so every metric is gathered and linted.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	promtest.Lint(t, reg, []string{
		"flowfleet_sink_failures_total", "flowfleet_sink_flows_published_total", "flowfleet_sink_messages_published_total",
		"flowfleet_sink_oldest_queued_age_seconds", "flowfleet_sink_queue_length", "flowfleet_sink_samples_published_total",
	})
}

// Validate refuses what the docs say it refuses: unknown schemes, a TLS scheme without a client
// certificate, a certificate for a plain scheme, and an out-of-range in-flight bound.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true}, // off
		{Config{URL: "redis://127.0.0.1:6379"}, true},
		{Config{URL: "nats://127.0.0.1:4222"}, true},
		{Config{URL: "rediss://bus:6380", CertFile: "c", KeyFile: "k", CAFile: "ca"}, true},
		{Config{URL: "tls://bus:4222", CertFile: "c", KeyFile: "k", CAFile: "ca"}, true},
		{Config{URL: "http://bus"}, false},
		{Config{URL: "rediss://bus:6380"}, false},
		{Config{URL: "tls://bus:4222", CertFile: "c", KeyFile: "k"}, false},
		{Config{URL: "redis://bus", CertFile: "c", KeyFile: "k"}, false},
		{Config{URL: "redis://bus", MaxInFlight: MaxMaxInFlight + 1}, false},
	} {
		cfg := tc.cfg
		cfg.SetDefaults()
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
	if got := Redact("redis://user:secret@bus:6379/0"); got != "redis://user:xxxxx@bus:6379/0" {
		t.Errorf("Redact = %q", got)
	}
	if reasonOf(errors.New("x")) != reasonUnavailable || reasonOf(&Error{Reason: reasonTimeout, Err: errors.New("x")}) != reasonTimeout {
		t.Error("reasonOf")
	}
}

// The batcher cuts at MaxMessageFlows and at MaxMessageBytes, numbers batches from 0, and gives the
// same messages for the same flows.
func TestBatcherBounds(t *testing.T) {
	x := testSample(2500)
	flows := testFlows("h", ws0, 2500)
	long := testFlows("h", ws0, 10)
	for _, f := range long {
		f.DstName = strings.Repeat("a", 200_000) // 200 kB names: 5 flows a message
	}
	for _, tc := range []struct {
		name  string
		flows int
		in    func() []Message
		want  []int
	}{
		{"flows", 2500, func() []Message { return cutAll(t, x, flows) }, []int{1000, 1000, 500}},
		{"bytes", 10, func() []Message { return cutAll(t, testSample(10), long) }, []int{5, 5}},
	} {
		got := tc.in()
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d messages, want %d", tc.name, len(got), len(tc.want))
		}
		for i, m := range got {
			if m.Flows != tc.want[i] || m.Batch != i || len(m.Data) > MaxMessageBytes {
				t.Fatalf("%s: message %d: %d flows, batch %d, %d bytes", tc.name, i, m.Flows, m.Batch, len(m.Data))
			}
		}
	}
	a, b := cutAll(t, x, flows), cutAll(t, x, flows)
	for i := range a {
		if a[i].ID != b[i].ID || string(a[i].Data) != string(b[i].Data) {
			t.Fatalf("message %d differs between two cuts of the same flows", i)
		}
	}
}
