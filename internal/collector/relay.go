package collector

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/store"
)

// newRelay starts the relay's worker when there is a key, and says once whether the relay is on.
func (c *Collector) newRelay(reg prometheus.Registerer) error {
	cfg := c.cfg.Relay
	if !cfg.Enabled() {
		c.log.Info("relay off: no NetworkSage API key; samples are written and kept but not uploaded " +
			"(set FLOWFLEET_NETWORKSAGE_API_KEY, networksage-api-key in the config file, or --networksage-api-key-file)")
		return nil
	}
	if cfg.Owner == "" {
		cfg.Owner = c.cfg.Name
	}
	w, err := relay.NewWorker(c.store, cfg, c.log, reg)
	if err != nil {
		return err
	}
	w.OnChange(func(s store.Sample, previous store.SampleState) { c.events.publish(s, previous) })
	c.relay = w
	typ := cfg.Type
	if typ == "" {
		typ = relay.DefaultType
	}
	conc := cfg.Concurrency
	if conc == 0 {
		conc = relay.DefaultConcurrency
	}
	c.log.Info("relay on: samples are uploaded to NetworkSage", "url", w.Client().BaseURL(), "type", typ,
		"concurrency", conc)
	return nil
}

// notifyRelay tells the relay that a sample was queued.
func (c *Collector) notifyRelay() {
	if c.relay != nil {
		c.relay.Notify()
	}
}

// RelaySample queues a sample for upload again (admin only: auth.DefaultPolicy).
func (s *sampleServer) RelaySample(ctx context.Context, req *flowfleetv1.RelaySampleRequest) (*flowfleetv1.RelaySampleResponse, error) {
	if s.c.relay == nil {
		return nil, status.Error(codes.FailedPrecondition, "the relay is off on this collector: it has no NetworkSage API key")
	}
	before, err := s.st.GetSample(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err, "sample "+strconv.Quote(req.GetId()))
	}
	x, err := s.st.EnqueueRelay(ctx, req.GetId(), time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, toStatus(err, "sample "+strconv.Quote(req.GetId()))
	}
	if err != nil {
		return nil, toStatus(err, "sample")
	}
	s.c.log.Info("sample queued for the relay again", "sample", x.ID, "previous_state", string(before.State))
	s.c.relay.Notify()
	if x.State != before.State {
		s.c.events.publish(*x, before.State)
	}
	return &flowfleetv1.RelaySampleResponse{Sample: SampleToProto(x)}, nil
}
