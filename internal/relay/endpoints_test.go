package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
)

// enrichContent is a BayseFlow file with a web flow, a malicious flow and a DNS flow.
func enrichContent(name string) []byte {
	flow := func(dst, proto string) string {
		return `{"src": "10.0.0.5:40000", "dst": "` + dst + `", "destinationNameSource": "passive", "srcPkts": 3, ` +
			`"srcBytes": 100, "dstPkts": 2, "dstBytes": 1000, "relativeStart": 0.5, "protocolInformation": "` + proto +
			`", "identifier": "1", "duration": 1.0}`
	}
	return []byte(`{"hash": "5f0c6a8e2d3b4c1a9e8f7d6c5b4a3928", "trafficDate": "1700000100.5", "fileName": "` + name +
		`", "BayseFlows": [` + flow("example.com:443", "TCP") + `, ` + flow("c2.bad.example:8080", "TCP") + `, ` +
		flow("10.0.0.1:53", "UDP") + `]}`)
}

func newClient(t *testing.T, e *env) *relay.Client {
	t.Helper()
	c, err := relay.NewClient(relay.ClientOptions{BaseURL: e.srv.URL, APIKey: testKey, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientEnrichment(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	c := newClient(t, e)
	ctx := context.Background()
	res, err := c.Upload(ctx, "web01_1700000100.bf", enrichContent("web01_1700000100.bf"), "")
	if err != nil {
		t.Fatal(err)
	}
	flows, err := c.SampleFlows(ctx, res.SampleID)
	if err != nil || len(flows) != 3 {
		t.Fatalf("flows %+v %v", flows, err)
	}
	wantCats := []string{sagefake.CategoryWebTLS, sagefake.CategoryMalicious, sagefake.CategoryDNS}
	for i, f := range flows {
		id := sagefake.FlowID(string(f.SourceData), string(f.DestinationData), []string{"TCP", "TCP", "UDP"}[i])
		if string(f.FlowCategory) != wantCats[i] || string(f.FlowID) != id || string(f.EventID) != sagefake.EventID(wantCats[i], id) {
			t.Errorf("flow %d: %+v", i, f)
		}
	}
	mal := flows[1]

	agg, err := c.Aggregated(ctx, res.SampleID)
	if err != nil || len(agg) != 3 {
		t.Fatalf("aggregated %+v %v", agg, err)
	}
	for i, a := range agg {
		d := sagefake.Destination(string(flows[i].DestinationData))
		if a.Secflow != flows[i] || a.FlowIDCount != sagefake.Count(string(flows[i].FlowID)) || a.Destination == nil ||
			!reflect.DeepEqual(*a.Destination, relay.DestinationInfo(d)) || len(a.Behavior) == 0 || (a.Event != nil) != (i == 1) {
			t.Errorf("aggregated %d: %+v", i, a)
		}
	}
	pub, err := c.PublicAggregated(ctx, res.UUID)
	if err != nil || !reflect.DeepEqual(pub, agg) {
		t.Errorf("public view %+v %v", pub, err)
	}
	last := e.fake.Requests()[len(e.fake.Requests())-1]
	if last.Route != sagefake.RoutePublic || len(last.Header.Values("apikey")) != 0 {
		t.Errorf("the public view was asked with %v (route %s)", last.Header.Values("apikey"), last.Route)
	}

	n, err := c.FlowCount(ctx, string(mal.FlowID))
	if err != nil || n != sagefake.Count(string(mal.FlowID)) {
		t.Errorf("count %d %v", n, err)
	}
	d, err := c.Destination(ctx, "c2.bad.example:8080")
	if err != nil || !reflect.DeepEqual(*d, relay.DestinationInfo(sagefake.Destination("c2.bad.example:8080"))) {
		t.Errorf("destination %+v %v", d, err)
	}
	beh, err := c.Behavior(ctx, string(mal.FlowID))
	if err != nil || string(beh) != mustJSON(t, sagefake.Behavior(string(mal.FlowID))) {
		t.Errorf("behavior %s %v", beh, err)
	}
	evDoc, _ := sagefake.Event(string(mal.EventID))
	ev, err := c.Event(ctx, string(mal.EventID))
	if err != nil || string(ev) != mustJSON(t, evDoc) {
		t.Errorf("event %s %v", ev, err)
	}

	// Reports: failed before any request, generated after one (the fake's report delay is 0).
	for _, kind := range []relay.ReportKind{relay.ReportSummary, relay.ReportCategorization} {
		r, err := c.Report(ctx, res.SampleID, kind)
		if err != nil || r.Status != relay.ReportFailed || r.Verdict != "" {
			t.Errorf("%s before a request: %+v %v", kind, r, err)
		}
		if err := c.RequestReport(ctx, res.SampleID, kind); err != nil {
			t.Fatal(err)
		}
		r, err = c.Report(ctx, res.SampleID, kind)
		if err != nil || r.Status != relay.ReportGenerated || r.Verdict != "malicious" || r.Confidence != "high" ||
			r.Summary != sagefake.ReportText(string(kind), wantCats) || !strings.Contains(string(r.Details), `"flows":3`) {
			t.Errorf("%s: %+v %v", kind, r, err)
		}
	}
	if last := e.fake.RequestsTo(sagefake.RouteSummary); len(last) != 3 || last[1].Method != "POST" || last[1].Header.Get("Content-Length") != "0" {
		t.Errorf("summary requests %+v", last)
	}
}

// Every endpoint's failures are *Errors naming it, with the reason the failure has and no key.
func TestEndpointErrors(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	c := newClient(t, e)
	ctx := context.Background()
	res, err := c.Upload(ctx, "a.bf", enrichContent("a.bf"), "")
	if err != nil {
		t.Fatal(err)
	}
	id := res.SampleID
	calls := []struct {
		route sagefake.Route
		op    string
		call  func() error
	}{
		{sagefake.RouteAggregated, "aggregated", func() error { _, err := c.Aggregated(ctx, id); return err }},
		{sagefake.RoutePublic, "public aggregated", func() error { _, err := c.PublicAggregated(ctx, res.UUID); return err }},
		{sagefake.RouteSummary, "summary", func() error { _, err := c.Report(ctx, id, relay.ReportSummary); return err }},
		{sagefake.RouteCategorization, "request categorization", func() error { return c.RequestReport(ctx, id, relay.ReportCategorization) }},
		{sagefake.RouteCount, "flow count", func() error { _, err := c.FlowCount(ctx, "ab"); return err }},
		{sagefake.RouteDestination, "destination", func() error { _, err := c.Destination(ctx, "a.example:443"); return err }},
		{sagefake.RouteBehavior, "behavior", func() error { _, err := c.Behavior(ctx, "ab"); return err }},
		{sagefake.RouteEvent, "event", func() error { _, err := c.Event(ctx, "fake-event-ab"); return err }},
		{sagefake.RouteFlows, "sample flows", func() error { _, err := c.SampleFlows(ctx, id); return err }},
	}
	for _, k := range calls {
		e.fake.Inject(k.route,
			sagefake.Fault{Kind: sagefake.FaultStatus, Status: 429, RetryAfter: "9", Message: "slow down " + testKey},
			sagefake.Fault{Kind: sagefake.FaultStatus, Status: 500},
			sagefake.Fault{Kind: sagefake.FaultErrorTrue, Message: "no such thing for " + testKey},
			sagefake.Fault{Kind: sagefake.FaultMalformed, Raw: `{"error": false, "body": "` + testKey},
			sagefake.Fault{Kind: sagefake.FaultStatus, Status: 404, Message: "sample not found"})
		for _, want := range []relay.Reason{relay.ReasonRateLimited, relay.ReasonServerError, relay.ReasonRejected,
			relay.ReasonBadResponse, relay.ReasonRejected} {
			err := k.call()
			var ae *relay.Error
			if !errors.As(err, &ae) || ae.Op != k.op || ae.Reason != want {
				t.Errorf("%s: want %s, got %v", k.op, want, err)
				continue
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("%s: the key is in %q", k.op, err)
			}
			if want == relay.ReasonRateLimited && ae.RetryAfter.Seconds() != 9 {
				t.Errorf("%s: Retry-After %v", k.op, ae.RetryAfter)
			}
		}
		if err := k.call(); err != nil {
			t.Errorf("%s after the faults: %v", k.op, err)
		}
	}
	// A bad key on a keyed endpoint is auth.
	bad, _ := relay.NewClient(relay.ClientOptions{BaseURL: e.srv.URL, APIKey: wrongKey, HTTPClient: e.srv.Client()})
	var ae *relay.Error
	if _, err := bad.Aggregated(ctx, id); !errors.As(err, &ae) || ae.Reason != relay.ReasonAuth || strings.Contains(err.Error(), wrongKey) {
		t.Errorf("wrong key: %v", err)
	}
}

// Arguments that cannot be right are refused before anything is sent.
func TestEndpointArgumentsChecked(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	c := newClient(t, e)
	ctx := context.Background()
	for _, d := range []string{"example.com", "example.com:", "example.com:0", "example.com:65536", "example.com:http",
		":443", "a/b:443", "example.com:+443", strings.Repeat("a", 2000) + ":443"} {
		_, err := c.Destination(ctx, d)
		var ae *relay.Error
		if !errors.As(err, &ae) || ae.Reason != relay.ReasonRejected || ae.Op != "destination" || ae.Sent {
			t.Errorf("destination %.40q: %v", d, err)
		}
	}
	for _, d := range []string{"example.com:443", "10.0.0.1:53", "[2001:db8::1]:443", "2001:db8::1:443"} {
		if _, _, err := relay.SplitDestination(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	errs := []error{
		c.RequestReport(ctx, "x", "verdict"),
		c.RequestReport(ctx, "", relay.ReportSummary),
	}
	_, err := c.Report(ctx, "x", "other")
	errs = append(errs, err)
	_, err = c.Aggregated(ctx, "")
	errs = append(errs, err)
	_, err = c.FlowCount(ctx, "")
	errs = append(errs, err)
	_, err = c.Event(ctx, strings.Repeat("e", 5000))
	errs = append(errs, err)
	_, err = c.PublicAggregated(ctx, "")
	errs = append(errs, err)
	for i, err := range errs {
		var ae *relay.Error
		if !errors.As(err, &ae) || ae.Reason != relay.ReasonRejected {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("%d requests sent for bad arguments", n)
	}
}

func TestDecodeReport(t *testing.T) {
	doc := `{"verdict": "malicious", "confidence": 0.9, "summary": "bad", "details": {"a": [1, 2]}}`
	for _, c := range []struct {
		body    string
		ok      bool
		want    relay.Report
		details string
	}{
		{`{"status": "generated", "summary": ` + strconv.Quote(doc) + `}`, true,
			relay.Report{Status: "generated", Verdict: "malicious", Confidence: "0.9", Summary: "bad"}, `{"a": [1, 2]}`},
		{`{"status": "generated", "summary": ` + doc + `}`, true, // an object instead of a string
			relay.Report{Status: "generated", Verdict: "malicious", Confidence: "0.9", Summary: "bad"}, `{"a": [1, 2]}`},
		{`{"status": "failed"}`, true, relay.Report{Status: "failed"}, ""},
		{`{"status": "pending", "summary": "not json"}`, true, relay.Report{Status: "pending"}, ""},
		{`{"status": "generated"}`, false, relay.Report{}, ""},
		{`{"status": "generated", "summary": "{\"verdict\": "}`, false, relay.Report{}, ""},
		{`{"status": "generated", "summary": "[1]"}`, false, relay.Report{}, ""},
		{`{"status": "generated", "summary": "{\"details\": \"` + strings.Repeat("x", relay.MaxDocument) + `\"}"}`, false, relay.Report{}, ""},
		{`[]`, false, relay.Report{}, ""},
		{`"generated"`, false, relay.Report{}, ""},
		{`{"status": {"x": 1}}`, false, relay.Report{}, ""},
		{`{"status": 2}`, true, relay.Report{Status: "2"}, ""},
	} {
		r, err := relay.DecodeReport(json.RawMessage(c.body), relay.ReportSummary)
		if (err == nil) != c.ok {
			t.Errorf("%.60s: error %v", c.body, err)
			continue
		}
		if err != nil {
			continue
		}
		d := r.Details
		r.Details = nil
		if !reflect.DeepEqual(*r, c.want) || string(d) != c.details {
			t.Errorf("%.60s: %+v %s", c.body, r, d)
		}
	}
	long := `{"status": "generated", "summary": ` + strconv.Quote(`{"verdict": "`+strings.Repeat("é", relay.MaxText)+`", "summary": "`+strings.Repeat("s", 2*relay.MaxProse)+`"}`) + `}`
	r, err := relay.DecodeReport(json.RawMessage(long), relay.ReportSummary)
	if err != nil || len(r.Verdict) > relay.MaxText || len(r.Summary) != relay.MaxProse || !strings.HasPrefix(r.Verdict, "éé") || !utf8Valid(r.Verdict) {
		t.Errorf("long fields: %d %d %v", len(r.Verdict), len(r.Summary), err)
	}
}

func TestDecodeCountAndLists(t *testing.T) {
	for body, want := range map[string]int64{`3`: 3, `"42"`: 42, `7.0`: 7, `" 5 "`: 5, `0`: 0} {
		if n, err := relay.DecodeCount(json.RawMessage(body)); err != nil || n != want {
			t.Errorf("count %s: %d %v", body, n, err)
		}
	}
	for _, body := range []string{`-1`, `1.5`, `"x"`, `{}`, `[1]`, `1e300`, `null`, `true`} {
		if _, err := relay.DecodeCount(json.RawMessage(body)); err == nil {
			t.Errorf("count %s accepted", body)
		}
	}
	for _, body := range []string{`{}`, `[1]`, `[{}] x`, `[{"sourceData": {}}]`, `[`} {
		if _, err := relay.DecodeSecflows(json.RawMessage(body)); err == nil {
			t.Errorf("flows %s accepted", body)
		}
	}
	fl, err := relay.DecodeSecflows(json.RawMessage(`[{"sourceData": "` + strings.Repeat("a", 3*relay.MaxText) + `", "sourceBytes": 12, "flowId": null}]`))
	if err != nil || len(fl) != 1 || len(fl[0].SourceData) != relay.MaxText || fl[0].SourceBytes != "12" || fl[0].FlowID != "" {
		t.Errorf("flows %+v %v", fl, err)
	}
	agg, err := relay.DecodeAggregated(json.RawMessage(`[{"secflow": {"flowId": "ab"}, "destination": {"title": 7, "tags": "a, b,,c"}, "behavior": null, "flowIdCount": "12"}]`))
	if err != nil || len(agg) != 1 || agg[0].Secflow.FlowID != "ab" || agg[0].Destination.Title != "7" ||
		!reflect.DeepEqual(agg[0].Destination.Tags, []string{"a", "b", "c"}) || agg[0].Behavior != nil || agg[0].FlowIDCount != 12 {
		t.Errorf("aggregated %+v %v", agg, err)
	}
	for _, body := range []string{`[{"behavior": "` + strings.Repeat("b", relay.MaxDocument) + `"}]`, `[{"flowIdCount": -2}]`,
		`[{"destination": "x"}]`, `[{"destination": {"tags": [` + strings.Repeat(`"t",`, relay.MaxTags) + `"t"]}}]`} {
		if _, err := relay.DecodeAggregated(json.RawMessage(body)); err == nil {
			t.Errorf("aggregated %.60s accepted", body)
		}
	}
	if _, err := relay.DecodeDestination(json.RawMessage(`[]`)); err == nil {
		t.Error("a destination list accepted as a destination")
	}
	if doc, err := relay.DecodeDocument(json.RawMessage(`null`)); err != nil || doc != nil {
		t.Errorf("null document %s %v", doc, err)
	}
	if _, err := relay.DecodeDocument(json.RawMessage(`{"a":`)); err == nil {
		t.Error("a broken document accepted")
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// A client without a key reads the public view, sends no key, and refuses every keyed call before
// sending it.
func TestPublicClientWithoutKey(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	ctx := context.Background()
	res, err := newClient(t, e).Upload(ctx, "a.bf", enrichContent("a.bf"), "")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := relay.NewPublicClient(relay.ClientOptions{BaseURL: e.srv.URL, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	agg, err := pc.PublicAggregated(ctx, res.UUID)
	if err != nil || len(agg) != 3 {
		t.Fatalf("public view without a key: %d %v", len(agg), err)
	}
	before := len(e.fake.Requests())
	var ae *relay.Error
	if _, err := pc.Aggregated(ctx, res.SampleID); !errors.As(err, &ae) || ae.Reason != relay.ReasonAuth || ae.Sent {
		t.Errorf("keyed call without a key: %v", err)
	}
	if n := len(e.fake.Requests()); n != before {
		t.Errorf("%d requests sent without a key", n-before)
	}
	if _, err := relay.NewClient(relay.ClientOptions{BaseURL: e.srv.URL}); err == nil {
		t.Error("NewClient without a key")
	}
}
