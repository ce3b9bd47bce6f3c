package sagefake_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
)

func TestCategoryRule(t *testing.T) {
	for dst, want := range map[string]string{
		"c2.bad.example:443": sagefake.CategoryMalicious, "C2.BAD.EXAMPLE.:80": sagefake.CategoryMalicious,
		"bad.example:443": sagefake.CategoryWebTLS, // not a name *ending* in .bad.example
		"10.0.0.1:53":     sagefake.CategoryDNS, "example.com:443": sagefake.CategoryWebTLS,
		"example.com:8443": sagefake.CategoryWebTLS, "example.com:80": sagefake.CategoryWeb,
		"[2001:db8::1]:8080": sagefake.CategoryWeb, "mx.example:25": sagefake.CategoryMail,
		"imap.example:993": sagefake.CategoryMail, "example.com:22": sagefake.CategoryOther,
		"no-port": sagefake.CategoryOther, "": sagefake.CategoryOther,
	} {
		if got := sagefake.Category(dst); got != want {
			t.Errorf("Category(%q) = %q, want %q", dst, got, want)
		}
	}
	id := sagefake.FlowID("10.0.0.5:40000", "example.com:443", "TCP")
	if len(id) != 32 || id != sagefake.FlowID("10.0.0.5:40000", "example.com:443", "TCP") ||
		id == sagefake.FlowID("10.0.0.5:40000", "example.com:443", "UDP") {
		t.Errorf("FlowID %q not a stable 32-digit id of its fields", id)
	}
	if ev := sagefake.EventID(sagefake.CategoryMalicious, id); ev != "fake-event-"+id[:16] {
		t.Errorf("EventID malicious = %q", ev)
	}
	if ev := sagefake.EventID(sagefake.CategoryWeb, id); ev != "" {
		t.Errorf("EventID of a benign flow = %q", ev)
	}
	for _, fid := range []string{id, "", "x", strings.Repeat("f", 64)} {
		if n := sagefake.Count(fid); n < 1 || n > 1000 || n != sagefake.Count(fid) {
			t.Errorf("Count(%q) = %d", fid, n)
		}
	}
	v, c := sagefake.Verdict([]string{sagefake.CategoryWeb, sagefake.CategoryMalicious})
	v2, c2 := sagefake.Verdict([]string{sagefake.CategoryWeb})
	v3, c3 := sagefake.Verdict(nil)
	if v != "malicious" || c != "high" || v2 != "benign" || c2 != "medium" || v3 != "benign" || c3 != "low" {
		t.Errorf("verdicts %s/%s %s/%s %s/%s", v, c, v2, c2, v3, c3)
	}
	cats := []string{sagefake.CategoryWeb, sagefake.CategoryDNS, sagefake.CategoryWeb}
	if s := sagefake.ReportText("summary", cats); s != "FAKE summary: 3 flows, 0 malicious; verdict benign (confidence medium)." {
		t.Errorf("summary text %q", s)
	}
	if s := sagefake.ReportText("categorization", cats); s != "FAKE categorization: 3 flows: fake-dns 1, fake-web 2." {
		t.Errorf("categorization text %q", s)
	}
	d := sagefake.Destination("c2.bad.example:8080")
	want := sagefake.DestinationInfo{Name: "c2.bad.example:8080", Title: "FAKE c2.bad.example",
		Description: "Fake metadata for c2.bad.example:8080 (fake-malicious).", Relevance: "high",
		Tags: []string{"fake-malicious", "port-8080"}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Destination = %+v", d)
	}
}

// enrichFlows is a secflow file with three distinct flows (one of them twice): a web flow, a malicious
// one and a DNS one.
func enrichFlows(name string) []byte {
	flow := func(dst, proto string) string {
		return `{"src": "10.0.0.5:40000", "dst": "` + dst + `", "destinationNameSource": "passive", "srcPkts": 3, ` +
			`"srcBytes": 100, "dstPkts": 2, "dstBytes": 1000, "relativeStart": 0.0, "protocolInformation": "` + proto +
			`", "identifier": "1", "duration": 1.5}`
	}
	return []byte(`{"hash": "abc", "trafficDate": "1700000100.25", "fileName": "` + name + `", "BayseFlows": [` +
		flow("example.com:443", "TCP") + `, ` + flow("c2.bad.example:8080", "TCP") + `, ` + flow("10.0.0.1:53", "UDP") + `, ` +
		flow("example.com:443", "TCP") + `]}`)
}

type uploaded struct{ SampleID, UUID string }

func uploadFlows(t *testing.T, srv *httptest.Server, name string) uploaded {
	t.Helper()
	r := upload(t, srv, key, []part{{name: "type", data: []byte("secflow")}, {name: "fileName", data: []byte(name)},
		{name: "file", fileName: name, contentType: "application/octet-stream", data: enrichFlows(name)}})
	var u uploaded
	if err := json.Unmarshal(r.body, &u); err != nil || r.status != 200 {
		t.Fatalf("upload %d %s", r.status, r.body)
	}
	return u
}

func post(t *testing.T, srv *httptest.Server, k, path string) result {
	return do(t, srv, http.MethodPost, path, map[string]string{"apikey": k}, nil, "")
}

func TestEnrichmentEndpoints(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f, srv := start(t, sagefake.Options{ProcessingDelay: time.Hour, ReportDelay: time.Hour, Now: now})
	u := uploadFlows(t, srv, "web01_1700000100.bf")
	base := "/sec/v1.0/samples/" + u.SampleID
	if r := get(t, srv, key, base+"/aggregated"); r.status != 200 || string(r.body) != "[]" {
		t.Errorf("aggregated while processing: %d %s", r.status, r.body)
	}
	if r := get(t, srv, key, base+"/summary"); r.status != 200 || string(r.body) != `{"status":"failed"}` {
		t.Errorf("summary before any request: %d %s", r.status, r.body)
	}
	if r := post(t, srv, key, base+"/summary"); r.status != 200 || r.error {
		t.Errorf("summary request: %d %s", r.status, r.body)
	}
	skew.Store(int64(90 * time.Minute)) // processed, the report not yet generated
	if r := get(t, srv, key, base+"/summary"); string(r.body) != `{"status":"pending"}` {
		t.Errorf("summary while generating: %s", r.body)
	}

	// The flows, as the rule says.
	var flows []map[string]string
	if err := json.Unmarshal(get(t, srv, key, base+"/list").body, &flows); err != nil || len(flows) != 4 {
		t.Fatalf("flows %v %v", flows, err)
	}
	wantCats := []string{sagefake.CategoryWebTLS, sagefake.CategoryMalicious, sagefake.CategoryDNS, sagefake.CategoryWebTLS}
	protos := []string{"TCP", "TCP", "UDP", "TCP"}
	for i, fl := range flows {
		id := sagefake.FlowID("10.0.0.5:40000", fl["destinationData"], protos[i])
		if fl["flowCategory"] != wantCats[i] || fl["flowId"] != id || fl["eventId"] != sagefake.EventID(wantCats[i], id) {
			t.Errorf("flow %d: %v", i, fl)
		}
		if _, has := fl["eventId"]; has != (wantCats[i] == sagefake.CategoryMalicious) {
			t.Errorf("flow %d: eventId present %v", i, has)
		}
	}
	malID, malEvent := flows[1]["flowId"], flows[1]["eventId"]

	// Aggregated: one element per distinct flowId.
	var agg []struct {
		Secflow     map[string]string        `json:"secflow"`
		Destination sagefake.DestinationInfo `json:"destination"`
		Behavior    map[string]any           `json:"behavior"`
		Event       map[string]any           `json:"event"`
		FlowIDCount int64                    `json:"flowIdCount"`
	}
	if err := json.Unmarshal(get(t, srv, key, base+"/aggregated").body, &agg); err != nil || len(agg) != 3 {
		t.Fatalf("aggregated %+v %v", agg, err)
	}
	for i, a := range agg {
		id := flows[i]["flowId"]
		if a.Secflow["flowId"] != id || a.FlowIDCount != sagefake.Count(id) || a.Behavior["flowId"] != id ||
			!reflect.DeepEqual(a.Destination, sagefake.Destination(flows[i]["destinationData"])) {
			t.Errorf("aggregated %d: %+v", i, a)
		}
		if (a.Event != nil) != (i == 1) || (i == 1 && a.Event["eventId"] != malEvent) {
			t.Errorf("aggregated %d event %v", i, a.Event)
		}
	}

	// Count, destination, behaviour, event.
	if r := get(t, srv, key, "/sec/v1.0/secflows/"+malID+"/count"); string(r.body) != jsonOf(t, sagefake.Count(malID)) {
		t.Errorf("count %s", r.body)
	}
	if r := get(t, srv, key, "/sec/v1.0/destinations/c2.bad.example:8080"); string(r.body) != jsonOf(t, sagefake.Destination("c2.bad.example:8080")) {
		t.Errorf("destination %s", r.body)
	}
	if r := get(t, srv, key, "/sec/v1.0/destinations/example.com"); r.status != 400 {
		t.Errorf("destination without a port: %d %s", r.status, r.body)
	}
	if r := get(t, srv, key, "/sec/v1.0/behaviors/"+malID); string(r.body) != jsonOf(t, sagefake.Behavior(malID)) {
		t.Errorf("behavior %s", r.body)
	}
	ev, _ := sagefake.Event(malEvent)
	if r := get(t, srv, key, "/sec/v1.0/events/"+malEvent); string(r.body) != jsonOf(t, ev) {
		t.Errorf("event %s", r.body)
	}
	if r := get(t, srv, key, "/sec/v1.0/events/nope"); r.status != 404 {
		t.Errorf("unknown event %d", r.status)
	}

	// The report, once generated: a JSON document encoded as a string.
	skew.Store(int64(3 * time.Hour))
	cats := []string{sagefake.CategoryWebTLS, sagefake.CategoryMalicious, sagefake.CategoryDNS, sagefake.CategoryWebTLS}
	checkReport(t, get(t, srv, key, base+"/summary"), "summary", cats)
	if r := get(t, srv, key, base+"/categorization"); string(r.body) != `{"status":"failed"}` {
		t.Errorf("categorization never requested: %s", r.body)
	}
	post(t, srv, key, base+"/categorization")
	skew.Store(int64(5 * time.Hour))
	checkReport(t, get(t, srv, key, base+"/categorization"), "categorization", cats)

	// Failing generation, then a new request that succeeds.
	f.SetFailReports(true)
	u2 := uploadFlows(t, srv, "web01_1700000400.bf")
	base2 := "/sec/v1.0/samples/" + u2.SampleID
	post(t, srv, key, base2+"/summary")
	skew.Store(int64(8 * time.Hour))
	if r := get(t, srv, key, base2+"/summary"); string(r.body) != `{"status":"failed"}` {
		t.Errorf("failing generation: %s", r.body)
	}
	f.SetFailReports(false)
	post(t, srv, key, base2+"/summary")
	skew.Store(int64(10 * time.Hour))
	checkReport(t, get(t, srv, key, base2+"/summary"), "summary", cats)

	// Public view: no key, the same elements; the other account's key changes nothing.
	pub := do(t, srv, http.MethodGet, "/public/v1.0/secflows/"+strings.ReplaceAll(u.UUID, "/", "%2F")+"/list/aggregated", nil, nil, "")
	priv := get(t, srv, key, base+"/aggregated")
	if pub.status != 200 || pub.error || string(pub.body) != string(priv.body) {
		t.Errorf("public view %d %s", pub.status, pub.body)
	}
	if r := do(t, srv, http.MethodGet, "/public/v1.0/secflows/bm9wZQ==/list/aggregated", nil, nil, ""); r.status != 404 {
		t.Errorf("unknown public id: %d", r.status)
	}

	// Mismatch: the first flow's sourceBytes is one more, and one flow more.
	f.SetMismatchFlows(true)
	var mm []map[string]string
	_ = json.Unmarshal(get(t, srv, key, base+"/list").body, &mm)
	if len(mm) != 5 || mm[0]["sourceBytes"] != "101" || mm[4]["sourceData"] != sagefake.MismatchSource ||
		mm[4]["destinationData"] != sagefake.MismatchDestination || mm[4]["flowCategory"] != sagefake.CategoryOther {
		t.Errorf("mismatched flows %v", mm)
	}

	// Every keyed route refuses a missing key.
	for _, p := range []string{base + "/aggregated", base + "/summary", "/sec/v1.0/secflows/" + malID + "/count",
		"/sec/v1.0/destinations/example.com:443", "/sec/v1.0/behaviors/" + malID, "/sec/v1.0/events/" + malEvent} {
		if r := get(t, srv, "", p); r.status != 403 || bodyString(r) != "Request unauthorized: 403" {
			t.Errorf("%s without a key: %d", p, r.status)
		}
	}
	if r := get(t, srv, otherKey, base+"/aggregated"); r.status != 404 {
		t.Errorf("another account's aggregated: %d", r.status)
	}
}

func TestPrivateAccountHasNoPublicView(t *testing.T) {
	_, srv := start(t, sagefake.Options{Private: true})
	u := uploadFlows(t, srv, "a.bf")
	if u.UUID != "" {
		t.Fatalf("a private upload got a public id %q", u.UUID)
	}
	// What the public id would have been: still not served.
	r := get(t, srv, key, "/sec/v1.0/samples/"+u.SampleID)
	var s map[string]string
	_ = json.Unmarshal(r.body, &s)
	pid := base64Std(s["id"] + "#hash#" + u.SampleID)
	if r := do(t, srv, http.MethodGet, "/public/v1.0/secflows/"+strings.ReplaceAll(pid, "/", "%2F")+"/list/aggregated", nil, nil, ""); r.status != 404 {
		t.Errorf("public view of a private sample: %d %s", r.status, r.body)
	}
}

func checkReport(t *testing.T, r result, kind string, cats []string) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil || body["status"] != "generated" {
		t.Fatalf("%s: %s", kind, r.body)
	}
	s, ok := body[kind].(string)
	if !ok {
		t.Fatalf("%s is not a string: %s", kind, r.body)
	}
	var doc struct {
		Verdict, Confidence, Summary string
		Details                      map[string]any
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("%s document %q: %v", kind, s, err)
	}
	v, c := sagefake.Verdict(cats)
	if doc.Verdict != v || doc.Confidence != c || doc.Summary != sagefake.ReportText(kind, cats) ||
		doc.Details["flows"] != float64(len(cats)) {
		t.Errorf("%s document %+v", kind, doc)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// routeRequest is a request of each route, for the fault tests.
func routeRequests(sampleID, publicID string) map[sagefake.Route][2]string {
	b := "/sec/v1.0/samples/" + sampleID
	return map[sagefake.Route][2]string{
		sagefake.RouteList: {"GET", "/upload/v1.0/uploads/list"}, sagefake.RouteSample: {"GET", b},
		sagefake.RouteFlows: {"GET", b + "/list"}, sagefake.RouteAggregated: {"GET", b + "/aggregated"},
		sagefake.RouteSummary: {"POST", b + "/summary"}, sagefake.RouteCategorization: {"GET", b + "/categorization"},
		sagefake.RouteCount: {"GET", "/sec/v1.0/secflows/ab/count"}, sagefake.RouteDestination: {"GET", "/sec/v1.0/destinations/a.example:443"},
		sagefake.RouteBehavior: {"GET", "/sec/v1.0/behaviors/ab"}, sagefake.RouteEvent: {"GET", "/sec/v1.0/events/fake-event-ab"},
		sagefake.RoutePublic: {"GET", "/public/v1.0/secflows/" + strings.ReplaceAll(publicID, "/", "%2F") + "/list/aggregated"},
	}
}

func TestFaultsOnEveryRoute(t *testing.T) {
	f, srv := start(t, sagefake.Options{})
	u := uploadFlows(t, srv, "a.bf")
	reqs := routeRequests(u.SampleID, u.UUID)
	if len(reqs) != len(sagefake.Routes)-1 { // the upload route has its own tests
		t.Fatalf("%d routes in the test, %d in the fake", len(reqs), len(sagefake.Routes))
	}
	for route, mp := range reqs {
		f.Inject(route,
			sagefake.Fault{Kind: sagefake.FaultStatus, Status: 429, RetryAfter: "3"},
			sagefake.Fault{Kind: sagefake.FaultStatus, Status: 502},
			sagefake.Fault{Kind: sagefake.FaultErrorTrue, Message: "in-band"},
			sagefake.Fault{Kind: sagefake.FaultMalformed},
			sagefake.Fault{Kind: sagefake.FaultCut})
		h := map[string]string{"apikey": key}
		if r := do(t, srv, mp[0], mp[1], h, nil, ""); r.status != 429 || r.header.Get("Retry-After") != "3" || !r.error {
			t.Errorf("%s 429: %d", route, r.status)
		}
		if r := do(t, srv, mp[0], mp[1], h, nil, ""); r.status != 502 || !r.error {
			t.Errorf("%s 502: %d", route, r.status)
		}
		if r := do(t, srv, mp[0], mp[1], h, nil, ""); r.status != 200 || !r.error || bodyString(r) != "in-band" {
			t.Errorf("%s error true: %d %s", route, r.status, r.body)
		}
		status, raw, err := rawDo(srv, mp[0], mp[1])
		if err != nil || status != 200 || raw != sagefake.DefaultMalformed || json.Valid([]byte(raw)) {
			t.Errorf("%s malformed: %d %q %v", route, status, raw, err)
		}
		if _, _, err := rawDo(srv, mp[0], mp[1]); err == nil {
			t.Errorf("%s cut: got a reply", route)
		}
		if r := do(t, srv, mp[0], mp[1], h, nil, ""); r.status != 200 || r.error {
			t.Errorf("%s after the faults: %d %s", route, r.status, r.body)
		}
		n := 0
		for _, rq := range f.RequestsTo(route) {
			if rq.Fault != 0 {
				n++
			}
		}
		if n != 5 {
			t.Errorf("%s: %d faulted requests recorded, want 5", route, n)
		}
	}
}

func rawDo(srv *httptest.Server, method, path string) (int, string, error) {
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("apikey", key)
	// A fresh connection each time: net/http sends a GET again, once, when a reused connection breaks
	// before the reply, and the second try would hide the cut.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
