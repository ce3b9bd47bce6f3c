package collector

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	streams        prometheus.Gauge
	batches        *prometheus.CounterVec
	flows          prometheus.Counter
	acks           prometheus.Counter
	ackLatency     prometheus.Histogram
	commitSize     prometheus.Histogram
	openWindows    prometheus.Gauge
	samplesWritten prometheus.Counter
	storeErrors    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_collector_ingest_streams",
			Help: "Ingest streams open now."}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_collector_batches_total",
			Help: "Flow batches received, by outcome (stored, duplicate, failed)."}, []string{"outcome"}),
		flows: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_flows_total",
			Help: "Flows stored."}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_acks_total",
			Help: "Batch acknowledgements sent."}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowfleet_collector_ack_latency_seconds",
			Help:    "Time from receiving a batch to acknowledging it (durable in the store).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		commitSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowfleet_collector_commit_batches",
			Help: "Batches per store transaction.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		openWindows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_collector_open_windows",
			Help: "Windows that have flows and are not closed yet."}),
		samplesWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_samples_written_total",
			Help: "Samples (or new revisions) written."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_store_errors_total",
			Help: "Store operations that failed."}),
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.batches, m.flows, m.acks, m.ackLatency, m.commitSize, m.openWindows,
			m.samplesWritten, m.storeErrors)
	}
	return m
}
