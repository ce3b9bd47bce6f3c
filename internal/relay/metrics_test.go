package relay

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The relay's metrics keep their exported names and pass promlint (Prometheus naming and help
// conventions): every metric is linted, samplesFailed with a child made for the purpose.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.samplesFailed.WithLabelValues("gave_up")

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{
		"flowfleet_relay_oldest_queued_age_seconds", "flowfleet_relay_polling_samples", "flowfleet_relay_queue_length",
		"flowfleet_relay_samples_failed_total", "flowfleet_relay_samples_processed_total",
		"flowfleet_relay_upload_duration_seconds", "flowfleet_relay_uploads_attempted_total",
		"flowfleet_relay_uploads_failed_total", "flowfleet_relay_uploads_recovered_total",
		"flowfleet_relay_uploads_succeeded_total",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("metric names changed or a metric was not linted:\n got %v\nwant %v", got, want)
	}
}
