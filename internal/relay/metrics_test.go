package relay

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/promtest"
)

// The relay's metrics keep their exported names and pass promlint (Prometheus naming and help
// conventions): every metric is linted, samplesFailed with a child made for the purpose.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.samplesFailed.WithLabelValues("gave_up")

	want := []string{
		"flowfleet_relay_enrich_attempts_total", "flowfleet_relay_enrich_failures_total",
		"flowfleet_relay_enrich_latency_seconds", "flowfleet_relay_enriching_samples",
		"flowfleet_relay_oldest_queued_age_seconds", "flowfleet_relay_polling_samples", "flowfleet_relay_queue_length",
		"flowfleet_relay_samples_enriched_total", "flowfleet_relay_samples_failed_total", "flowfleet_relay_samples_processed_total",
		"flowfleet_relay_upload_duration_seconds", "flowfleet_relay_uploads_attempted_total",
		"flowfleet_relay_uploads_failed_total", "flowfleet_relay_uploads_recovered_total",
		"flowfleet_relay_uploads_succeeded_total",
	}
	promtest.Lint(t, reg, want)
}
