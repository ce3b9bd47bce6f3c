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

// EnrichSample queues one sample, or every sample that can be, for enrichment again (admin only:
// auth.DefaultPolicy): each is polled until NetworkSage has processed it, then enriched.
func (s *sampleServer) EnrichSample(ctx context.Context, req *flowfleetv1.EnrichSampleRequest) (*flowfleetv1.EnrichSampleResponse, error) {
	if s.c.relay == nil {
		return nil, status.Error(codes.FailedPrecondition, "the relay is off on this collector: it has no NetworkSage API key")
	}
	now := time.Now()
	until := s.c.relay.PollUntil(now)
	if req.GetAll() {
		n, err := s.st.EnqueueEnrichAll(ctx, now, until)
		if err != nil {
			return nil, toStatus(err, "samples")
		}
		s.c.log.Info("samples queued for enrichment again", "samples", n)
		s.c.relay.Notify()
		return &flowfleetv1.EnrichSampleResponse{Queued: int64(n)}, nil
	}
	what := "sample " + strconv.Quote(req.GetId())
	x, err := s.st.EnqueueEnrich(ctx, req.GetId(), now, until)
	switch {
	case errors.Is(err, store.ErrNotRelayed):
		return nil, status.Errorf(codes.FailedPrecondition, "%s: NetworkSage does not have it (no remote id): relay it first "+
			"(flowctl samples relay)", what)
	case errors.Is(err, store.ErrQueued):
		return nil, status.Errorf(codes.FailedPrecondition, "%s is in the relay queue already: it is enriched once "+
			"NetworkSage has processed it", what)
	case err != nil:
		return nil, toStatus(err, what)
	}
	s.c.log.Info("sample queued for enrichment again", "sample", x.ID, "state", string(x.State))
	s.c.relay.Notify()
	return &flowfleetv1.EnrichSampleResponse{Sample: SampleToProto(x), Queued: 1}, nil
}
