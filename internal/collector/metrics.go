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
	closeFailures  prometheus.Counter
	windowDrops    prometheus.Counter
	windowsBounded prometheus.Counter
	refusals       *prometheus.CounterVec
	hostConflicts  prometheus.Counter

	// Connections, readiness and integrity (conns.go, health.go, query.go).
	conns             prometheus.Gauge
	connsLimit        prometheus.Gauge
	connsRejected     *prometheus.CounterVec
	ready             prometheus.Gauge
	readinessFailures *prometheus.CounterVec
	corruptContent    prometheus.Counter

	// Retention (retention.go).
	pruneRuns           *prometheus.CounterVec
	prunedSamples       prometheus.Counter
	prunedFiles         prometheus.Counter
	prunedWindows       prometheus.Counter
	prunedBatches       prometheus.Counter
	oldestSample        prometheus.Gauge
	revisionsAfterPrune *prometheus.CounterVec
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
		closeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_window_close_failures_total",
			Help: "Window closes that failed (the sample could not be built, written or recorded); each is retried with backoff."}),
		windowDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_window_flows_dropped_total",
			Help: "Flows dropped because their window had reached its bound (--max-window-flows, --max-window-bytes)."}),
		windowsBounded: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_windows_bounded_total",
			Help: "Windows that reached their bound (--max-window-flows, --max-window-bytes) and dropped flows."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_collector_ingest_refusals_total",
			Help: "Ingest streams or messages refused or closed by a limit, by reason (host_stream_limit, one_stream_per_host, idle, hello_timeout, out_of_order, time_range, unencodable, window_length)."},
			[]string{"reason"}),
		hostConflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_host_stream_conflicts_total",
			Help: "Ingest streams opened while the same host had a stream open with a different stream id (two sensors sharing one certificate)."}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_collector_connections",
			Help: "gRPC connections open now (counted against --max-connections)."}),
		connsLimit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_collector_connections_limit",
			Help: "The gRPC connection limit (--max-connections, or derived from the open-file limit)."}),
		connsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_collector_connections_rejected_total",
			Help: "gRPC connections refused or closed by a limit, by reason (limit, handshake_timeout, handshake_failed)."},
			[]string{"reason"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_collector_ready",
			Help: "1 while the last readiness probe passed (the store and samples directory take writes, commits succeed), else 0."}),
		readinessFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_collector_readiness_failures_total",
			Help: "Readiness probes that failed, by check (store_write, samples_dir, commits)."}, []string{"check"}),
		corruptContent: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_sample_content_corrupt_total",
			Help: "Sample content reads refused because the stored bytes do not match their checksum (DATA_LOSS)."}),
		pruneRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_collector_prune_runs_total",
			Help: "Pruning passes (--retention, --batch-retention), by outcome (ok, failed, canceled)."}, []string{"outcome"}),
		prunedSamples: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_pruned_samples_total",
			Help: "Samples (revisions) deleted from the store because their window is older than --retention."}),
		prunedFiles: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_pruned_sample_files_total",
			Help: "Sample .bf files removed from this collector's data directory by retention."}),
		prunedWindows: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_pruned_windows_total",
			Help: "Windows deleted from the store because they are older than --retention."}),
		prunedBatches: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_collector_pruned_batches_total",
			Help: "Stored flow batches deleted: of closed windows older than --batch-retention, and of windows deleted."}),
		oldestSample: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_collector_oldest_sample_window_start_seconds",
			Help: "Window start (Unix seconds) of the oldest sample kept, as of the last pruning pass (0: none)."}),
		revisionsAfterPrune: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_collector_revisions_after_prune_total",
			Help: "Revisions written for windows whose batches had been pruned (late batches after --batch-retention), by what stood in for the pruned batches: pruned_revision (the sample they were pruned at: the revision is complete) or missing (only the late flows)."},
			[]string{"base"}),
	}
	for _, r := range []string{reasonHostStreams, reasonOneStream, reasonIdle, reasonHelloTimeout, reasonOutOfOrder,
		reasonTimeRange, reasonUnencodable, reasonWindowLength} {
		m.refusals.WithLabelValues(r) // every reason shows, at 0, before its first refusal
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.batches, m.flows, m.acks, m.ackLatency, m.commitSize, m.openWindows,
			m.samplesWritten, m.storeErrors, m.closeFailures, m.windowDrops, m.windowsBounded, m.refusals, m.hostConflicts,
			m.pruneRuns, m.prunedSamples, m.prunedFiles, m.prunedWindows, m.prunedBatches, m.oldestSample, m.revisionsAfterPrune,
			m.conns, m.connsLimit, m.connsRejected, m.ready, m.readinessFailures, m.corruptContent)
	}
	return m
}
