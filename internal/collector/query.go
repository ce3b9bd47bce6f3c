package collector

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
)

// contentChunk is the size of GetSampleContent chunks (the proto allows 64 KiB).
const contentChunk = 64 * 1024

type sampleServer struct {
	flowfleetv1.UnimplementedSampleServiceServer
	c  *Collector
	st sampleStore
}

// sampleStore is what the sample service needs of the store: reading samples with NetworkSage's answers,
// and queueing one for the relay or enrichment again (RelaySample, EnrichSample, relay.go).
type sampleStore interface {
	ListSamples(ctx context.Context, f store.SampleFilter) (samples []store.Sample, nextToken string, err error)
	GetSample(ctx context.Context, id string) (*store.Sample, error)
	SampleContent(ctx context.Context, id string) ([]byte, error)
	SampleFlows(ctx context.Context, id string) ([]byte, error)
	SampleFlowChunks(ctx context.Context, id string, from, to int) ([][]byte, error)
	EnqueueRelay(ctx context.Context, id string, now time.Time) (*store.Sample, error)
	store.Enrichments
}

// toStatus maps store errors to gRPC status errors.
func toStatus(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrCorrupt):
		return status.Errorf(codes.DataLoss, "%s: the stored content is damaged (it no longer matches the checksum recorded "+
			"when it was written) and is not served; the collector that wrote it may still have the sample's .bf file", what)
	case errors.Is(err, store.ErrBadToken):
		return status.Error(codes.InvalidArgument, "invalid page_token")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Unavailable, "store: %v", err)
}

var stateToProto = map[store.SampleState]flowfleetv1.SampleState{
	store.StateOpen:             flowfleetv1.SampleState_SAMPLE_STATE_OPEN,
	store.StateClosed:           flowfleetv1.SampleState_SAMPLE_STATE_CLOSED,
	store.StateWritten:          flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN,
	store.StateRelayed:          flowfleetv1.SampleState_SAMPLE_STATE_RELAYED,
	store.StateRelayFailed:      flowfleetv1.SampleState_SAMPLE_STATE_RELAY_FAILED,
	store.StateProcessed:        flowfleetv1.SampleState_SAMPLE_STATE_PROCESSED,
	store.StateWriteFailed:      flowfleetv1.SampleState_SAMPLE_STATE_WRITE_FAILED,
	store.StateEnriched:         flowfleetv1.SampleState_SAMPLE_STATE_ENRICHED,
	store.StateEnrichmentFailed: flowfleetv1.SampleState_SAMPLE_STATE_ENRICHMENT_FAILED,
}

func stateFromProto(s flowfleetv1.SampleState) store.SampleState {
	for k, v := range stateToProto {
		if v == s {
			return k
		}
	}
	return ""
}

// SampleToProto converts a sample's metadata.
func SampleToProto(s *store.Sample) *flowfleetv1.Sample {
	p := &flowfleetv1.Sample{
		Id: s.ID, Host: s.Host, WindowStart: s.WindowStart, WindowSeconds: s.WindowSeconds,
		Revision: uint32(s.Revision), FlowCount: int64(s.FlowCount), Bytes: s.Bytes, State: stateToProto[s.State],
		FileName: s.FileName, RemoteId: s.RemoteID, RelayError: s.RelayError, WriteError: s.WriteError,
		FlowsDropped: s.FlowsDropped, CreateTime: timestamppb.New(s.Created), UpdateTime: timestamppb.New(s.Updated),
	}
	e := &s.Enrichment
	p.Verdict, p.Confidence, p.Summary, p.EnrichmentError = e.Verdict, e.Confidence, e.Summary, e.Error
	p.FlowsMatched, p.FlowsUnmatched, p.RemoteUnmatched = int64(e.FlowsMatched), int64(e.FlowsUnmatched), int64(e.RemoteUnmatched)
	if !s.Processed.IsZero() {
		p.ProcessTime = timestamppb.New(s.Processed)
	}
	return p
}

func (s *sampleServer) ListSamples(ctx context.Context, req *flowfleetv1.ListSamplesRequest) (*flowfleetv1.ListSamplesResponse, error) {
	f := store.SampleFilter{Host: req.GetHost(), State: stateFromProto(req.GetState()),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	// The proto bounds since and until to years 1–9999; nanos out of range are refused here too.
	for name, ts := range map[string]*timestamppb.Timestamp{"since": req.GetSince(), "until": req.GetUntil()} {
		if ts != nil {
			if err := ts.CheckValid(); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "%s: %v", name, err)
			}
		}
	}
	if req.GetSince() != nil {
		f.Since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		f.Until = req.GetUntil().AsTime()
	}
	samples, next, err := s.st.ListSamples(ctx, f)
	if err != nil {
		return nil, toStatus(err, "samples")
	}
	resp := &flowfleetv1.ListSamplesResponse{NextPageToken: next}
	for i := range samples {
		resp.Samples = append(resp.Samples, SampleToProto(&samples[i]))
	}
	return resp, nil
}

func (s *sampleServer) GetSample(ctx context.Context, req *flowfleetv1.GetSampleRequest) (*flowfleetv1.GetSampleResponse, error) {
	x, err := s.st.GetSample(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err, "sample "+strconv.Quote(req.GetId()))
	}
	return &flowfleetv1.GetSampleResponse{Sample: SampleToProto(x)}, nil
}

func (s *sampleServer) GetSampleContent(req *flowfleetv1.GetSampleContentRequest, stream flowfleetv1.SampleService_GetSampleContentServer) error {
	ctx := stream.Context()
	x, err := s.st.GetSample(ctx, req.GetId())
	if err != nil {
		return toStatus(err, "sample "+strconv.Quote(req.GetId()))
	}
	if err := notWritten(x); err != nil {
		return err
	}
	content, err := s.st.SampleContent(ctx, req.GetId())
	if errors.Is(err, store.ErrCorrupt) {
		s.c.metrics.corruptContent.Inc()
		s.c.log.Error("sample content damaged in the store: not served", "sample", x.ID, "err", err)
	}
	if err != nil {
		return toStatus(err, "sample "+strconv.Quote(req.GetId()))
	}
	first := true
	for off := 0; off < len(content) || first; off += contentChunk {
		end := min(off+contentChunk, len(content))
		resp := &flowfleetv1.GetSampleContentResponse{Offset: int64(off), Chunk: content[off:end]}
		if first {
			resp.Sample = SampleToProto(x)
			first = false
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// notWritten refuses the content of a window whose sample could not be written (its placeholder).
func notWritten(x *store.Sample) error {
	if x.State == store.StateWriteFailed {
		return status.Errorf(codes.FailedPrecondition, "sample %q is not written yet: %s", x.ID, x.WriteError)
	}
	return nil
}

// ListSampleFlows reads only the flow chunks (store.FlowChunkFlows flows each) that the page covers, so
// a page costs the same at any offset of any sample; a sample stored whole (before migration 00005) is
// decoded whole. The page token is the offset of the page's first flow, in decimal digits.
func (s *sampleServer) ListSampleFlows(ctx context.Context, req *flowfleetv1.ListSampleFlowsRequest) (*flowfleetv1.ListSampleFlowsResponse, error) {
	x, err := s.st.GetSample(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err, "sample "+strconv.Quote(req.GetId()))
	}
	if err := notWritten(x); err != nil {
		return nil, err
	}
	total := x.FlowCount
	off := 0
	if t := req.GetPageToken(); t != "" {
		var ok bool
		if off, ok = parseFlowToken(t, total); !ok {
			return nil, status.Error(codes.InvalidArgument, "invalid page_token")
		}
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 1000
	}
	end := min(off+size, total)
	page, err := s.flowPage(ctx, x.ID, off, end)
	if err != nil {
		return nil, err
	}
	resp := &flowfleetv1.ListSampleFlowsResponse{Flows: page}
	if end < total {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// flowPage returns flows [off, end) of a sample.
func (s *sampleServer) flowPage(ctx context.Context, id string, off, end int) ([]*flowfleetv1.Flow, error) {
	if off >= end {
		return nil, nil
	}
	const k = store.FlowChunkFlows
	from := off / k
	chunks, err := s.st.SampleFlowChunks(ctx, id, from, (end+k-1)/k)
	if err != nil {
		return nil, toStatus(err, "sample "+strconv.Quote(id))
	}
	var flows []*flowfleetv1.Flow
	if len(chunks) == 0 { // stored whole
		enc, err := s.st.SampleFlows(ctx, id)
		if err != nil {
			return nil, toStatus(err, "sample "+strconv.Quote(id))
		}
		from = 0
		if flows, err = flowpb.Decode(enc); err != nil {
			return nil, status.Errorf(codes.DataLoss, "sample %q: %v", id, err)
		}
	}
	for _, c := range chunks {
		got, err := flowpb.Decode(c)
		if err != nil {
			return nil, status.Errorf(codes.DataLoss, "sample %q: %v", id, err)
		}
		flows = append(flows, got...)
	}
	lo, hi := off-from*k, end-from*k
	if hi > len(flows) {
		return nil, status.Errorf(codes.DataLoss, "sample %q: %d flows stored, %d recorded", id, from*k+len(flows), end)
	}
	page := flows[lo:hi]
	if err := s.label(ctx, id, off, page); err != nil {
		return nil, err
	}
	return page, nil
}

// label sets NetworkSage's answers on flows [off, off+len(page)) of a sample: category, flow id and
// event id from the sample's stored labels, and the destination's metadata when it is cached and has not
// expired. A sample that is not enriched has no labels: its flows are left as they are.
func (s *sampleServer) label(ctx context.Context, id string, off int, page []*flowfleetv1.Flow) error {
	if len(page) == 0 {
		return nil
	}
	const k = store.FlowChunkFlows
	from := off / k
	chunks, err := s.st.SampleFlowLabels(ctx, id, from, (off+len(page)+k-1)/k)
	if err != nil {
		return toStatus(err, "sample "+strconv.Quote(id))
	}
	if len(chunks) == 0 {
		return nil
	}
	names := map[string]bool{}
	keys := make([]string, len(page))
	for i, f := range page {
		c, j := (off+i)/k-from, (off+i)%k
		if c >= len(chunks) || j >= len(chunks[c]) {
			continue
		}
		l := chunks[c][j]
		f.Category, f.FlowId, f.EventId = l.Category, l.FlowID, l.EventID
		if l.Destination != "" {
			names[l.Destination], keys[i] = true, l.Destination
		}
	}
	dests, err := s.st.Destinations(ctx, slices.Collect(maps.Keys(names)), time.Now())
	if err != nil {
		return toStatus(err, "destinations")
	}
	for i, f := range page {
		if d, ok := dests[keys[i]]; ok && keys[i] != "" {
			f.Destination = &flowfleetv1.Destination{Name: d.Name, Title: d.Title, Description: d.Description,
				Relevance: d.Relevance, Tags: d.Tags}
		}
	}
	return nil
}

// parseFlowToken reads a ListSampleFlows page token: the decimal offset of a flow, 0 to total, as
// ListSampleFlows writes it (digits only, no sign, no leading zero).
func parseFlowToken(t string, total int) (int, bool) {
	if len(t) > 10 || (len(t) > 1 && t[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return 0, false
		}
		n = n*10 + int(t[i]-'0')
	}
	return n, n <= total
}

func (s *sampleServer) WatchSamples(req *flowfleetv1.WatchSamplesRequest, stream flowfleetv1.SampleService_WatchSamplesServer) error {
	sub := s.c.events.subscribe(req.GetHost())
	defer s.c.events.unsubscribe(sub)
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.c.draining:
			return status.Error(codes.Unavailable, "collector is shutting down")
		case ev := <-sub.ch:
			if lost := sub.takeLost(); lost > 0 {
				if err := stream.Send(&flowfleetv1.WatchSamplesResponse{Message: &flowfleetv1.WatchSamplesResponse_EventsLost{
					EventsLost: &flowfleetv1.EventsLost{Count: lost}}}); err != nil {
					return err
				}
			}
			if err := stream.Send(&flowfleetv1.WatchSamplesResponse{Message: &flowfleetv1.WatchSamplesResponse_Event{
				Event: &flowfleetv1.SampleEvent{Sample: SampleToProto(&ev.sample), PreviousState: stateToProto[ev.previous],
					Time: timestamppb.Now()}}}); err != nil {
				return err
			}
		}
	}
}

type fleetServer struct {
	flowfleetv1.UnimplementedFleetServiceServer
	c  *Collector
	st hostLister
}

// hostLister is what the fleet service needs of the store.
type hostLister interface {
	ListHosts(ctx context.Context, f store.HostFilter) (hosts []store.Host, nextToken string, err error)
}

func (s *fleetServer) ListHosts(ctx context.Context, req *flowfleetv1.ListHostsRequest) (*flowfleetv1.ListHostsResponse, error) {
	// Hosts come a page at a time, as ListSamples' samples do (same token scheme and page size cap).
	// With connected_only the store selects the hosts marked connected and this collector's own hosts,
	// which are then judged by the streams open here: a page may come out shorter than page_size, and
	// its next_page_token still continues after the last host examined.
	hosts, next, err := s.st.ListHosts(ctx, store.HostFilter{ConnectedOnly: req.GetConnectedOnly(),
		Collector: s.c.cfg.Name, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(err, "hosts")
	}
	resp := &flowfleetv1.ListHostsResponse{NextPageToken: next}
	for _, h := range hosts {
		connected := h.Connected
		open := 0
		if connected {
			open = 1 // connected to another collector: one stream as far as the store knows
		}
		if h.Collector == s.c.cfg.Name {
			open = s.c.streams.count(h.Name) // this collector knows for sure
			connected = open > 0
		}
		if req.GetConnectedOnly() && !connected {
			continue
		}
		resp.Hosts = append(resp.Hosts, &flowfleetv1.Host{Name: h.Name, LastContact: timestamppb.New(h.LastContact),
			Connected: connected, SoftwareVersion: h.SoftwareVersion, FlowsReceived: h.FlowsReceived,
			DropsReported: h.DropsReported, StreamId: h.StreamID, FlowsDropped: h.FlowsDropped, OpenStreams: uint32(open)})
	}
	return resp, nil
}
