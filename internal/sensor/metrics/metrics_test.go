package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/promtest"
)

// The sensor's metrics keep their exported names (they were built from Namespace and Subsystem
// before) and pass promlint (Prometheus naming and help conventions).
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	want := []string{
		"flowfleet_sensor_ack_latency_seconds", "flowfleet_sensor_batches_acked_total", "flowfleet_sensor_batches_sent_total",
		"flowfleet_sensor_batches_spooled_total", "flowfleet_sensor_cert_expiry_seconds", "flowfleet_sensor_connected",
		"flowfleet_sensor_evictions_total", "flowfleet_sensor_flows_exported_total", "flowfleet_sensor_flows_rejected_total",
		"flowfleet_sensor_packet_drops_total", "flowfleet_sensor_packets_total", "flowfleet_sensor_queue_packets",
		"flowfleet_sensor_reconnects_total", "flowfleet_sensor_spool_batches", "flowfleet_sensor_spool_bytes",
		"flowfleet_sensor_spool_corrupt_files_total", "flowfleet_sensor_spool_dropped_batches_total",
		"flowfleet_sensor_spool_dropped_flows_total", "flowfleet_sensor_spool_write_errors_total",
		"flowfleet_sensor_window_ends_sent_total", "flowfleet_sensor_windows_flushed_total",
	}
	promtest.Lint(t, reg, want)
}
