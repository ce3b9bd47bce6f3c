package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/sink"
)

// newSink prepares the message-bus sink's worker when a bus is configured (docs/sink.md). It does not
// wait for the bus: one that is down is retried, and the samples wait in the store's queue.
func (c *Collector) newSink(reg prometheus.Registerer) error {
	cfg := c.cfg.Sink
	if !cfg.Enabled() {
		return nil
	}
	if cfg.Owner == "" {
		cfg.Owner = c.cfg.Name
	}
	pub, err := sink.Dial(cfg, c.log)
	if err != nil {
		return err
	}
	w, err := sink.NewWorker(c.store, pub, cfg, c.log, reg)
	if err != nil {
		pub.Close()
		return err
	}
	c.sink = w
	c.log.Info("sink on: every sample's flows are published to the bus", "url", sink.Redact(cfg.URL),
		"stream", cfg.Stream, "subject", cfg.Subject)
	return nil
}

// notifySink tells the sink that a sample was queued.
func (c *Collector) notifySink() {
	if c.sink != nil {
		c.sink.Notify()
	}
}
