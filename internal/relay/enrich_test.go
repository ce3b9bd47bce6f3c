package relay_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/internal/store"
)

// enrichFlows are the flows of the enrichment tests' sample: a malicious name, two flows that differ
// in nothing (so they share a key under the matching rule), a DNS flow and an ICMP flow (no ports).
var enrichFlows = []struct{ src, dst, proto string }{
	{"10.0.0.5:40000", "c2.bad.example:443", "TCP"},
	{"10.0.0.5:40001", "example.com:443", "TCP"},
	{"10.0.0.5:40001", "example.com:443", "TCP"},
	{"10.0.0.5:5353", "9.9.9.9:53", "UDP"},
	{"10.0.0.5", "192.0.2.7", "ICMP"},
}

func enrichSampleContent(name string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"hash": "5f0c6a8e2d3b4c1a9e8f7d6c5b4a3928", "trafficDate": "1700000100.5", "fileName": %q, "BayseFlows": [`, name)
	for i, f := range enrichFlows {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"src": %q, "dst": %q, "destinationNameSource": "passive", "srcPkts": 3, "srcBytes": 100, `+
			`"dstPkts": 2, "dstBytes": 1000, "relativeStart": 0.25, "protocolInformation": %q, "identifier": "%d", "duration": 1.5}`,
			f.src, f.dst, f.proto, i)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// addEnrichSample writes a sample of enrichFlows, queued for the relay.
func (e *env) addEnrichSample(host string, ws int64) string {
	e.t.Helper()
	id, _ := e.addSampleWith(host, ws, len(enrichFlows), enrichSampleContent)
	return id
}

// enrichConfig polls every 20 ms and takes a "failed" report as final at once.
func (e *env) enrichConfig() relay.Config {
	cfg := e.config()
	cfg.PollInterval = 20 * time.Millisecond
	cfg.ReportGrace = time.Nanosecond
	return cfg
}

func wantLabels(t *testing.T, st store.Store, id string, mismatch bool) {
	t.Helper()
	chunks, err := st.SampleFlowLabels(context.Background(), id, 0, 1)
	if err != nil || len(chunks) != 1 || len(chunks[0]) != len(enrichFlows) {
		t.Fatalf("labels: %v %v", chunks, err)
	}
	for i, f := range enrichFlows {
		got := chunks[0][i]
		if mismatch && i == 0 {
			if got != (store.FlowLabel{}) {
				t.Errorf("flow 0 does not match NetworkSage's (its bytes differ) but got %+v", got)
			}
			continue
		}
		cat := sagefake.Category(f.dst)
		fid := sagefake.FlowID(f.src, f.dst, f.proto)
		want := store.FlowLabel{Category: cat, FlowID: fid, EventID: sagefake.EventID(cat, fid), Destination: f.dst}
		if got != want {
			t.Errorf("flow %d: label %+v, want %+v", i, got, want)
		}
	}
}

// A processed sample is enriched with no operator action: every flow gets the category, flow id and
// event id the fake's rule gives, the sample the verdict and summary, each destination its metadata;
// each enrichment request is made once.
func TestEnrichAfterProcessed(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.start(e.enrichConfig())
	id := e.addEnrichSample("web01", ws0)
	x := e.waitState(id, store.StateEnriched)
	wantLabels(t, e.st, id, false)
	cats := make([]string, len(enrichFlows))
	for i, f := range enrichFlows {
		cats[i] = sagefake.Category(f.dst)
	}
	v, conf := sagefake.Verdict(cats)
	want := store.Enrichment{Verdict: v, Confidence: conf, Summary: sagefake.ReportText("summary", cats),
		FlowsMatched: len(enrichFlows)}
	if x.Enrichment != want || v != "malicious" {
		t.Errorf("enrichment %+v, want %+v", x.Enrichment, want)
	}
	if x.Processed.IsZero() || x.RemoteID == "" {
		t.Errorf("processed %v remote id %q", x.Processed, x.RemoteID)
	}
	d, err := e.st.Destinations(context.Background(), []string{"c2.bad.example:443", "example.com:443"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c2.bad.example:443", "example.com:443"} {
		w := sagefake.Destination(name)
		if got := d[name]; got.Title != w.Title || got.Description != w.Description || got.Relevance != w.Relevance ||
			strings.Join(got.Tags, ",") != strings.Join(w.Tags, ",") || !got.Expires.After(time.Now().Add(23*time.Hour)) {
			t.Errorf("destination %s: %+v, want %+v for 24 h", name, got, w)
		}
	}
	for route, n := range map[sagefake.Route]int{sagefake.RouteFlows: 1, sagefake.RouteAggregated: 1} {
		if got := len(e.fake.RequestsTo(route)); got != n {
			t.Errorf("%s: %d requests, want %d", route, got, n)
		}
	}
	for _, route := range []sagefake.Route{sagefake.RouteSummary, sagefake.RouteCategorization} {
		posts := 0
		for _, r := range e.fake.RequestsTo(route) {
			if r.Method == "POST" {
				posts++
			}
		}
		if posts != 1 {
			t.Errorf("%s: %d POSTs, want 1", route, posts)
		}
	}
	if got := e.counter("flowfleet_relay_samples_enriched_total"); got != 1 {
		t.Errorf("enriched %v", got)
	}
	waitFor(t, "the enriching gauge to drop", func() bool { return e.counter("flowfleet_relay_enriching_samples") == 0 })
}

// Flows NetworkSage's list does not match are counted, never guessed.
func TestEnrichMismatchCounted(t *testing.T) {
	e := newEnv(t, sagefake.Options{MismatchFlows: true})
	e.start(e.enrichConfig())
	id := e.addEnrichSample("web01", ws0)
	x := e.waitState(id, store.StateEnriched)
	wantLabels(t, e.st, id, true)
	if got := x.Enrichment; got.FlowsMatched != len(enrichFlows)-1 || got.FlowsUnmatched != 1 || got.RemoteUnmatched != 2 {
		t.Errorf("counts %+v: want %d matched, 1 unmatched, 2 of NetworkSage's unmatched", got, len(enrichFlows)-1)
	}
}

// Each failure of the fake ends in the documented state, with the sample's flows and file kept and no
// more requests than the retry policy allows.
func TestEnrichFailures(t *testing.T) {
	cases := []struct {
		name    string
		route   sagefake.Route
		faults  []sagefake.Fault
		fail    bool // reports fail
		state   store.SampleState
		errHas  string
		minReqs int // requests to route at the end
		maxReqs int
	}{
		{name: "429 then ok", route: sagefake.RouteFlows,
			faults: []sagefake.Fault{{Kind: sagefake.FaultStatus, Status: 429, RetryAfter: "1"}},
			state:  store.StateEnriched, minReqs: 2, maxReqs: 2},
		{name: "5xx twice then ok", route: sagefake.RouteAggregated,
			faults: []sagefake.Fault{{Kind: sagefake.FaultStatus, Status: 500}, {Kind: sagefake.FaultStatus, Status: 502}},
			state:  store.StateEnriched, minReqs: 3, maxReqs: 3},
		{name: "error true is final", route: sagefake.RouteAggregated,
			faults: []sagefake.Fault{{Kind: sagefake.FaultErrorTrue, Message: "no such view"}},
			state:  store.StateEnrichmentFailed, errHas: "networksage aggregated: HTTP 200: rejected: no such view", minReqs: 1, maxReqs: 1},
		{name: "malformed until gave up", route: sagefake.RouteFlows,
			faults: []sagefake.Fault{{Kind: sagefake.FaultMalformed}, {Kind: sagefake.FaultMalformed}, {Kind: sagefake.FaultMalformed}},
			state:  store.StateEnrichmentFailed, errHas: "gave up after 3 attempts; last: networksage sample flows", minReqs: 3, maxReqs: 3},
		{name: "cut connection then ok", route: sagefake.RouteFlows,
			faults: []sagefake.Fault{{Kind: sagefake.FaultCut}},
			state:  store.StateEnriched, minReqs: 2, maxReqs: 2},
		{name: "hang then ok", route: sagefake.RouteCategorization,
			faults: []sagefake.Fault{{Kind: sagefake.FaultHang, HangFor: 10 * time.Second}},
			state:  store.StateEnriched, minReqs: 2},
		{name: "404 on a report is final", route: sagefake.RouteSummary,
			faults: []sagefake.Fault{{Kind: sagefake.FaultStatus, Status: 404}},
			state:  store.StateEnrichmentFailed, errHas: "networksage request summary: HTTP 404: rejected", minReqs: 1, maxReqs: 1},
		{name: "reports failed", fail: true, state: store.StateEnrichmentFailed,
			errHas: "networksage summary: status failed (NetworkSage could not generate it); networksage categorization: status failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, sagefake.Options{FailReports: c.fail})
			if c.route != "" {
				e.fake.Inject(c.route, c.faults...)
			}
			cfg := e.enrichConfig()
			cfg.MaxAttempts = 3
			cfg.Timeout = 500 * time.Millisecond
			e.start(cfg)
			id := e.addEnrichSample("web01", ws0)
			x := e.waitState(id, c.state)
			if !strings.Contains(x.Enrichment.Error, c.errHas) {
				t.Errorf("enrichment error %q, want it to contain %q", x.Enrichment.Error, c.errHas)
			}
			if c.state == store.StateEnriched && x.Enrichment.Verdict != "malicious" {
				t.Errorf("verdict %q", x.Enrichment.Verdict)
			}
			if c.route != "" {
				n := len(e.fake.RequestsTo(c.route))
				if n < c.minReqs || (c.maxReqs > 0 && n > c.maxReqs) {
					t.Errorf("%d requests to %s, want %d to %d", n, c.route, c.minReqs, c.maxReqs)
				}
			}
			content, err := e.st.SampleContent(context.Background(), id)
			if err != nil || string(content) != string(enrichSampleContent(id+".bf")) || x.FlowCount != len(enrichFlows) {
				t.Errorf("the sample's content changed: %v", err)
			}
			e.stop()
			if st, _ := e.st.OutboxStats(context.Background()); st.Enriching != 0 || st.Queued != 0 {
				t.Errorf("outbox after the end: %+v", st)
			}
		})
	}
}

// A worker stopped between processed and enriched leaves the work queued in the store; the next worker
// enriches the sample once.
func TestEnrichResumesAfterRestart(t *testing.T) {
	var skew atomic.Int64 // the fake's clock: reports are generated when the test moves it
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := newEnv(t, sagefake.Options{ReportDelay: time.Hour, Now: now})
	cfg := e.enrichConfig()
	e.start(cfg)
	id := e.addEnrichSample("web01", ws0)
	waitFor(t, "the report phase", func() bool {
		st, _ := e.st.OutboxStats(context.Background())
		x, _ := e.st.GetSample(context.Background(), id)
		return st.Enriching == 1 && x != nil && x.Enrichment.FlowsMatched == len(enrichFlows)
	})
	e.stop()
	skew.Store(int64(2 * time.Hour))
	e.start(cfg)
	x := e.waitState(id, store.StateEnriched)
	if x.Enrichment.Verdict != "malicious" {
		t.Errorf("verdict %q", x.Enrichment.Verdict)
	}
	if n := len(e.fake.RequestsTo(sagefake.RouteFlows)); n != 1 {
		t.Errorf("%d flow list requests, want 1: the restart must not fetch again", n)
	}
}
