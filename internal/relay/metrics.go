package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the relay's Prometheus metrics (flowfleet_relay_*). Label values are bounded: reason is a
// Reason, never an error text.
type Metrics struct {
	attempted     prometheus.Counter
	succeeded     prometheus.Counter
	failed        *prometheus.CounterVec
	samplesFailed *prometheus.CounterVec
	recovered     prometheus.Counter
	processed     prometheus.Counter
	duration      prometheus.Histogram
	queueLength   prometheus.Gauge
	oldestAge     prometheus.Gauge
	polling       prometheus.Gauge

	enrichAttempts prometheus.Counter
	enrichFailures *prometheus.CounterVec
	enriched       prometheus.Counter
	enriching      prometheus.Gauge
	enrichLatency  prometheus.Histogram
}

var allReasons = []Reason{ReasonAuth, ReasonRejected, ReasonTooLarge, ReasonRateLimited, ReasonUnavailable,
	ReasonServerError, ReasonTimeout, ReasonNetwork, ReasonBadResponse, ReasonRedirect, ReasonCanceled}

// NewMetrics makes the relay's metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempted: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_relay_uploads_attempted_total",
			Help: "Sample uploads sent to NetworkSage."}),
		succeeded: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_relay_uploads_succeeded_total",
			Help: "Sample uploads NetworkSage acknowledged (HTTP 200, error false, a sampleId)."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_relay_uploads_failed_total",
			Help: "Sample uploads that failed, by reason (auth, rejected, too_large, rate_limited, unavailable, server_error, timeout, network, bad_response, redirect, canceled)."},
			[]string{"reason"}),
		samplesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_relay_samples_failed_total",
			Help: "Samples marked relay_failed, by reason (a permanent failure, gave_up after the last retry, or corrupt: the stored content no longer matches its checksum)."},
			[]string{"reason"}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_relay_uploads_recovered_total",
			Help: "Uploads whose outcome was unknown and that were found in NetworkSage's uploads list, so not sent again."}),
		processed: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_relay_samples_processed_total",
			Help: "Uploaded samples NetworkSage reported processed."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowfleet_relay_upload_duration_seconds",
			Help: "Time an upload request took, whatever its outcome.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		queueLength: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_relay_queue_length",
			Help: "Samples waiting in the relay outbox for an upload."}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_relay_oldest_queued_age_seconds",
			Help: "Age of the oldest sample waiting for an upload (0 when none is)."}),
		polling: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_relay_polling_samples",
			Help: "Uploaded samples whose processing by NetworkSage is being watched."}),
		enrichAttempts: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_relay_enrich_attempts_total",
			Help: "Attempts to fetch a processed sample's enriched flows and aggregated view from NetworkSage."}),
		enrichFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_relay_enrich_failures_total",
			Help: "Samples marked enrichment_failed, by the step that failed (content, flows, aggregated, request_report, report, deadline)."},
			[]string{"step"}),
		enriched: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_relay_samples_enriched_total",
			Help: "Samples enriched with NetworkSage's answers."}),
		enriching: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_relay_enriching_samples",
			Help: "Processed samples waiting for their enrichment to finish."}),
		enrichLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowfleet_relay_enrich_latency_seconds",
			Help:    "Time from NetworkSage having processed a sample to the sample being enriched.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
	}
	for _, r := range allReasons {
		m.failed.WithLabelValues(string(r))
	}
	for _, op := range enrichOps {
		m.enrichFailures.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.attempted, m.succeeded, m.failed, m.samplesFailed, m.recovered, m.processed, m.duration,
			m.queueLength, m.oldestAge, m.polling, m.enrichAttempts, m.enrichFailures, m.enriched, m.enriching,
			m.enrichLatency)
	}
	return m
}
