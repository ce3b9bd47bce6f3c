package collector

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/promtest"
)

// The collector's metrics keep their exported names and pass promlint (Prometheus naming and help
// conventions): every metric is linted, the vectors with a child made for the purpose.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.batches.WithLabelValues("stored")
	m.connsRejected.WithLabelValues(reasonLimit)
	m.readinessFailures.WithLabelValues("commits")
	m.pruneRuns.WithLabelValues("ok")
	m.revisionsAfterPrune.WithLabelValues("missing")

	want := []string{
		"flowfleet_collector_ack_latency_seconds", "flowfleet_collector_acks_total", "flowfleet_collector_batches_total",
		"flowfleet_collector_commit_batches", "flowfleet_collector_connections", "flowfleet_collector_connections_limit",
		"flowfleet_collector_connections_rejected_total", "flowfleet_collector_flows_total",
		"flowfleet_collector_host_stream_conflicts_total", "flowfleet_collector_ingest_refusals_total",
		"flowfleet_collector_ingest_streams", "flowfleet_collector_oldest_sample_window_start_seconds",
		"flowfleet_collector_open_windows", "flowfleet_collector_prune_runs_total", "flowfleet_collector_pruned_batches_total",
		"flowfleet_collector_pruned_sample_files_total", "flowfleet_collector_pruned_samples_total",
		"flowfleet_collector_pruned_windows_total", "flowfleet_collector_readiness_failures_total",
		"flowfleet_collector_ready", "flowfleet_collector_revisions_after_prune_total",
		"flowfleet_collector_sample_content_corrupt_total", "flowfleet_collector_samples_written_total",
		"flowfleet_collector_store_errors_total", "flowfleet_collector_window_close_failures_total",
		"flowfleet_collector_window_flows_dropped_total", "flowfleet_collector_windows_bounded_total",
	}
	promtest.Lint(t, reg, want)
}
