package sink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons: the label values of flowfleet_sink_failures_total (a fixed set, never error text).
const (
	reasonUnavailable = "unavailable" // no connection to the bus
	reasonTimeout     = "timeout"     // the bus did not acknowledge in time
	reasonRejected    = "rejected"    // the bus answered with an error
	reasonStore       = "store"       // the queue or the sample could not be read
	reasonCorrupt     = "corrupt"     // the sample's stored flows do not decode
	reasonEncode      = "encode"      // a record could not be written
)

var allReasons = []string{reasonUnavailable, reasonTimeout, reasonRejected, reasonStore, reasonCorrupt, reasonEncode}

// Error is a failure with its reason.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func reasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return reasonUnavailable
}

type metrics struct {
	samples     prometheus.Counter
	messages    prometheus.Counter
	flows       prometheus.Counter
	failures    *prometheus.CounterVec
	queueLength prometheus.Gauge
	oldestAge   prometheus.Gauge
}

// newMetrics makes the sink's metrics and registers them on reg (nil: not registered).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		samples: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_sink_samples_published_total",
			Help: "Samples whose every message the bus acknowledged."}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_sink_messages_published_total",
			Help: "Messages the bus acknowledged (a sample published again after a failure counts again)."}),
		flows: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_sink_flows_published_total",
			Help: "Flows in messages the bus acknowledged."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowfleet_sink_failures_total",
			Help: "Failed attempts to publish a sample, by reason (unavailable, timeout, rejected, store, corrupt, encode)."},
			[]string{"reason"}),
		queueLength: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_sink_queue_length",
			Help: "Samples waiting to be published."}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowfleet_sink_oldest_queued_age_seconds",
			Help: "Age of the oldest sample waiting to be published (0 when none is)."}),
	}
	for _, r := range allReasons {
		m.failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.samples, m.messages, m.flows, m.failures, m.queueLength, m.oldestAge)
	}
	return m
}
