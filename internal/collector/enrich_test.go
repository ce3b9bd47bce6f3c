package collector

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Issue #17 through the API: a relayed sample goes processed → enriched, published on WatchSamples;
// ListSampleFlows carries each flow's category, flow id and destination metadata; GetSample the
// verdict; EnrichSample (admin only) queues it again and it is enriched again.
func TestEnrichmentThroughTheAPI(t *testing.T) {
	p := newTestPKI(t)
	fake, rcfg := startFake(t)
	rcfg.PollInterval = 20 * time.Millisecond
	rcfg.ReportGrace = time.Nanosecond
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour, Relay: rcfg})
	admin := flowfleetv1.NewSampleServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleAdmin, "root", pki.IssueOptions{})))
	reader := flowfleetv1.NewSampleServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))

	events := watchEvents(t, tc, reader)

	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})), "stream-1", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	s.send(1, testFlows(ws, 3, 0))
	s.ack()
	s.endWindow(ws, 60, 0)
	id, _ := closer.SampleName("web01", ws, 1)
	waitFor(t, "the sample to be enriched", func() bool {
		x, _ := tc.st.GetSample(context.Background(), id)
		return x != nil && x.State == store.StateEnriched
	})
	waitFor(t, "the processed → enriched event", func() bool {
		for _, e := range events() {
			if e.GetPreviousState() == flowfleetv1.SampleState_SAMPLE_STATE_PROCESSED &&
				e.GetSample().GetState() == flowfleetv1.SampleState_SAMPLE_STATE_ENRICHED {
				return true
			}
		}
		return false
	})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	got, err := reader.GetSample(ctx, &flowfleetv1.GetSampleRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	x := got.GetSample()
	flows, err := reader.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	var cats []string
	for i, f := range flows.GetFlows() {
		dst := f.GetDstName() + ":" + f.GetDstPort()
		if f.GetDstName() == "" {
			dst = f.GetDstAddr() + ":" + f.GetDstPort()
		}
		cats = append(cats, f.GetCategory())
		if f.GetCategory() != sagefake.Category(dst) || f.GetFlowId() == "" {
			t.Errorf("flow %d to %s: category %q flow id %q, want %q", i, dst, f.GetCategory(), f.GetFlowId(), sagefake.Category(dst))
		}
		want := sagefake.Destination(dst)
		if d := f.GetDestination(); d.GetName() != dst || d.GetTitle() != want.Title || d.GetRelevance() != want.Relevance {
			t.Errorf("flow %d: destination %v, want %+v", i, d, want)
		}
	}
	v, conf := sagefake.Verdict(cats)
	if len(cats) != 3 || x.GetVerdict() != v || x.GetConfidence() != conf || x.GetSummary() != sagefake.ReportText("summary", cats) ||
		x.GetFlowsMatched() != 3 || x.GetFlowsUnmatched() != 0 || x.GetProcessTime() == nil {
		t.Errorf("sample %v, want verdict %s (%s) and 3 matched", x, v, conf)
	}

	// Enriching again is for admins; it needs a sample NetworkSage has.
	if _, err := reader.EnrichSample(ctx, &flowfleetv1.EnrichSampleRequest{Id: id}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("reader EnrichSample: %v, want PermissionDenied", err)
	}
	for _, bad := range []*flowfleetv1.EnrichSampleRequest{{}, {Id: id, All: true}, {Id: "bad id!"}} {
		if _, err := admin.EnrichSample(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("EnrichSample(%v): %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := admin.EnrichSample(ctx, &flowfleetv1.EnrichSampleRequest{Id: "nope_1"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown sample: %v", err)
	}
	lists := len(fake.RequestsTo(sagefake.RouteFlows))
	resp, err := admin.EnrichSample(ctx, &flowfleetv1.EnrichSampleRequest{Id: id})
	if err != nil || resp.GetQueued() != 1 || resp.GetSample().GetId() != id {
		t.Fatalf("EnrichSample: %v %v", resp, err)
	}
	waitFor(t, "the sample enriched again", func() bool { return len(fake.RequestsTo(sagefake.RouteFlows)) == lists+1 })
	waitFor(t, "the enrichment to finish", func() bool {
		st, _ := tc.st.OutboxStats(context.Background())
		x, _ := tc.st.GetSample(context.Background(), id)
		return st.Enriching == 0 && st.Polling == 0 && x.State == store.StateEnriched
	})
	if resp, err := admin.EnrichSample(ctx, &flowfleetv1.EnrichSampleRequest{All: true}); err != nil || resp.GetQueued() != 0 {
		t.Errorf("EnrichSample all with nothing to do: %v %v", resp, err)
	}
}
