// Package metrics holds the sensor's Prometheus metrics (flowfleet_sensor_*). Every metric is created on
// an injected registry, never the global one, so each test and each in-process sensor has its own.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the reason label of flowfleet_sensor_packet_drops_total.
const (
	ReasonKernel = "kernel" // the kernel or libpcap dropped the packet (its buffer was full)
	ReasonQueue  = "queue"  // the sensor's capture queue was full
	ReasonLate   = "late"   // the packet's time was before the current window (interleaved interfaces)
	// ReasonEnginePanic: the flow engine panicked on the frame; the frame was dropped and the sensor
	// went on (window.Windower recovers at the frame boundary).
	ReasonEnginePanic = "engine_panic"
)

// Metrics is the set of sensor metrics. Its fields are safe for concurrent use.
type Metrics struct {
	Packets       prometheus.Counter
	PacketDrops   *prometheus.CounterVec
	QueueLength   prometheus.Gauge
	FlowsExported prometheus.Counter
	Evictions     prometheus.Counter
	Windows       prometheus.Counter
	FlowsRejected prometheus.Counter

	BatchesSpooled      prometheus.Counter
	BatchesSent         prometheus.Counter
	BatchesAcked        prometheus.Counter
	WindowEndsSent      prometheus.Counter
	SpoolBytes          prometheus.Gauge
	SpoolBatches        prometheus.Gauge
	SpoolDroppedBatches prometheus.Counter
	SpoolDroppedFlows   prometheus.Counter
	SpoolCorruptFiles   prometheus.Counter
	SpoolErrors         prometheus.Counter

	Reconnects prometheus.Counter
	Connected  prometheus.Gauge
	AckLatency prometheus.Histogram
	CertExpiry prometheus.Gauge
}

// Metric names are written out in full (flowfleet_sensor_<name>), as in the collector and the relay,
// so that a name in a dashboard or alert greps to its definition.

// New creates the metrics and registers them on reg; a nil reg creates them unregistered (tests, or
// a sensor run with metrics off).
func New(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &Metrics{
		Packets: counter("flowfleet_sensor_packets_total", "Packets captured and handed to the flow engine's queue."),
		PacketDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowfleet_sensor_packet_drops_total",
			Help: "Packets lost before the flow engine, by reason: kernel (capture buffer full), queue (sensor queue full), late (time before the current window), engine_panic (the flow engine panicked on the frame; it was dropped)."},
			[]string{"reason"}),
		QueueLength:   gauge("flowfleet_sensor_queue_packets", "Packets waiting in the capture queue."),
		FlowsExported: counter("flowfleet_sensor_flows_exported_total", "Flows the engine exported and the sensor put into batches."),
		Evictions:     counter("flowfleet_sensor_evictions_total", "Flows exported early because the flow table was full (--max-flows)."),
		Windows:       counter("flowfleet_sensor_windows_flushed_total", "Windows flushed (engine flushes at a window boundary or shutdown)."),
		FlowsRejected: counter("flowfleet_sensor_flows_rejected_total", "Flows dropped because they failed the API's validation rules (a bug: please report)."),

		BatchesSpooled:      counter("flowfleet_sensor_batches_spooled_total", "Flow batches written to the spool."),
		BatchesSent:         counter("flowfleet_sensor_batches_sent_total", "Flow batches sent to a collector, replays included."),
		BatchesAcked:        counter("flowfleet_sensor_batches_acked_total", "Flow batches a collector acknowledged (and that were removed from the spool)."),
		WindowEndsSent:      counter("flowfleet_sensor_window_ends_sent_total", "WindowEnd messages sent to a collector, resends included."),
		SpoolBytes:          gauge("flowfleet_sensor_spool_bytes", "Bytes of flow batches in the spool."),
		SpoolBatches:        gauge("flowfleet_sensor_spool_batches", "Flow batches in the spool (not yet acknowledged)."),
		SpoolDroppedBatches: counter("flowfleet_sensor_spool_dropped_batches_total", "Oldest batches deleted unsent because the spool reached --spool-max-bytes."),
		SpoolDroppedFlows:   counter("flowfleet_sensor_spool_dropped_flows_total", "Flows lost with batches the spool deleted or failed to write."),
		SpoolCorruptFiles:   counter("flowfleet_sensor_spool_corrupt_files_total", "Spool files found corrupt and moved to the corrupt/ directory."),
		SpoolErrors:         counter("flowfleet_sensor_spool_write_errors_total", "Batches that could not be written to the spool (disk full, I/O error)."),

		Reconnects: counter("flowfleet_sensor_reconnects_total", "Ingest streams opened after the first (reconnects and failovers)."),
		Connected:  gauge("flowfleet_sensor_connected", "1 while an Ingest stream to a collector is open and welcomed, else 0."),
		AckLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowfleet_sensor_ack_latency_seconds",
			Help:    "Time from sending a batch to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}),
		CertExpiry: gauge("flowfleet_sensor_cert_expiry_seconds", "Seconds until the client certificate expires (negative once expired)."),
	}
	if reg != nil {
		reg.MustRegister(m.Packets, m.PacketDrops, m.QueueLength, m.FlowsExported, m.Evictions, m.Windows, m.FlowsRejected,
			m.BatchesSpooled, m.BatchesSent, m.BatchesAcked, m.WindowEndsSent, m.SpoolBytes, m.SpoolBatches,
			m.SpoolDroppedBatches, m.SpoolDroppedFlows, m.SpoolCorruptFiles, m.SpoolErrors,
			m.Reconnects, m.Connected, m.AckLatency, m.CertExpiry)
	}
	for _, r := range []string{ReasonKernel, ReasonQueue, ReasonLate, ReasonEnginePanic} {
		m.PacketDrops.WithLabelValues(r)
	}
	return m
}
