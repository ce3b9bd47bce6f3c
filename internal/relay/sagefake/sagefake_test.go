package sagefake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
)

const (
	key      = "fake-key-1f2e3d4c5b6a79881f2e3d4c5b6a7988"
	otherKey = "fake-key-other-00112233445566778899aabb"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, o sagefake.Options) (*sagefake.Fake, *httptest.Server) {
	t.Helper()
	logs := &syncBuf{}
	if o.Keys == nil {
		o.Keys = []string{key, otherKey}
	}
	o.Log = slog.New(slog.NewTextHandler(logs, nil))
	f := sagefake.New(o)
	srv := httptest.NewTLSServer(f)
	t.Cleanup(func() {
		srv.Close()
		if out := logs.String(); strings.Contains(out, key) || strings.Contains(out, otherKey) {
			t.Errorf("a key is in the fake's log:\n%s", out)
		}
		if !strings.Contains(logs.String(), "FAKE") {
			t.Error("the fake's log lines do not say it is a fake")
		}
	})
	return f, srv
}

type part struct {
	name, fileName, contentType string
	data                        []byte
}

func secflow(name string) []byte {
	return []byte(`{"hash": "abc", "trafficDate": "1700000100.25", "fileName": "` + name + `", "BayseFlows": [` +
		`{"src": "10.0.0.5:40000", "dst": "example.com:443", "destinationNameSource": "passive", "srcPkts": 3, ` +
		`"srcBytes": 100, "dstPkts": 2, "dstBytes": 1000, "relativeStart": 0.0, "protocolInformation": "TCP", ` +
		`"identifier": "1", "duration": 1.5}]}`)
}

func goodParts(name string) []part {
	return []part{{name: "type", data: []byte("secflow")}, {name: "fileName", data: []byte(name)},
		{name: "file", fileName: name, contentType: "application/octet-stream", data: secflow(name)}}
}

func multipartBody(t *testing.T, parts []part) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := `form-data; name="` + p.name + `"`
		if p.fileName != "" {
			cd += `; filename="` + p.fileName + `"`
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

type result struct {
	status int
	header http.Header
	error  bool
	body   json.RawMessage
}

func do(t *testing.T, srv *httptest.Server, method, path string, headers map[string]string, body []byte, contentType string) result {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Error *bool           `json:"error"`
		Body  json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Error == nil {
		t.Fatalf("%s %s: reply %q is not the envelope", method, path, raw)
	}
	return result{status: resp.StatusCode, header: resp.Header, error: *env.Error, body: env.Body}
}

func upload(t *testing.T, srv *httptest.Server, k string, parts []part) result {
	body, ct := multipartBody(t, parts)
	return do(t, srv, http.MethodPost, "/upload/v1.0/uploader", map[string]string{"apikey": k}, body, ct)
}

func get(t *testing.T, srv *httptest.Server, k, path string) result {
	return do(t, srv, http.MethodGet, path, map[string]string{"apikey": k}, nil, "")
}

func bodyString(r result) string {
	var s string
	_ = json.Unmarshal(r.body, &s)
	return s
}

func TestAuth(t *testing.T) {
	f, srv := start(t, sagefake.Options{})
	body, ct := multipartBody(t, goodParts("a.bf"))
	for name, h := range map[string]map[string]string{
		"none":          {},
		"wrong key":     {"apikey": "nope-nope-nope"},
		"X-API-KEY":     {"X-API-KEY": key},
		"Authorization": {"Authorization": "Bearer " + key},
	} {
		r := do(t, srv, http.MethodPost, "/upload/v1.0/uploader", h, body, ct)
		if r.status != 403 || !r.error || !strings.HasSuffix(bodyString(r), "403") {
			t.Errorf("%s: %d %v %s", name, r.status, r.error, r.body)
		}
	}
	r := do(t, srv, http.MethodGet, "/upload/v1.0/uploads/list?apikey="+key, nil, nil, "")
	if r.status != 403 {
		t.Errorf("key in the query: %d", r.status)
	}
	if r := get(t, srv, key, "/upload/v1.0/uploads/list"); r.status != 200 || r.error {
		t.Errorf("apikey header: %d", r.status)
	}
	if len(f.Uploads()) != 0 {
		t.Error("an unauthorised upload was stored")
	}
	if n := f.RequestCount(key); n != 1 {
		t.Errorf("request count for the key %d, want 1", n)
	}
}

func TestUploadValidation(t *testing.T) {
	_, srv := start(t, sagefake.Options{})
	good := goodParts("a.bf")
	bad := map[string][]part{
		"no file":    good[:2],
		"empty file": {good[0], good[1], {name: "file", fileName: "a.bf", data: nil}},
		"no type":    good[1:],
		"bad type":   {{name: "type", data: []byte("exe")}, good[1], good[2]},
		"zeekDnsFile without zeek": append(append([]part{}, good...),
			part{name: "zeekDnsFile", fileName: "dns_a", data: []byte("x")}),
		"duplicate file": append(append([]part{}, good...), good[2]),
		"not JSON":       {good[0], good[1], {name: "file", fileName: "a.bf", data: []byte("not json")}},
		"no trafficDate": {good[0], good[1], {name: "file", fileName: "a.bf",
			data: []byte(`{"hash": "h", "fileName": "a", "flashes": []}`)}},
		"no flows": {good[0], good[1], {name: "file", fileName: "a.bf",
			data: []byte(`{"hash": "h", "fileName": "a", "trafficDate": "1.0"}`)}},
	}
	for name, parts := range bad {
		if r := upload(t, srv, key, parts); r.status != 400 || !r.error || bodyString(r) == "" {
			t.Errorf("%s: %d %v %s", name, r.status, r.error, r.body)
		}
	}
	r := do(t, srv, http.MethodPost, "/upload/v1.0/uploader", map[string]string{"apikey": key}, []byte(`{"file": 1}`), "application/json")
	if r.status != 400 {
		t.Errorf("JSON body: %d", r.status)
	}
	// The older secflow key and other types.
	ok := map[string][]part{
		"flashes": {good[0], good[1], {name: "file", fileName: "a.sf",
			data: []byte(`{"hash": "h", "fileName": "a", "trafficDate": "1.0", "flashes": []}`)}},
		"zeek with dns": {{name: "type", data: []byte("zeek")}, {name: "file", fileName: "conn.log", data: []byte("x")},
			{name: "zeekDnsFile", fileName: "dns_conn.log", data: []byte("y")}},
		"pcap without fileName": {{name: "type", data: []byte("pcap")}, {name: "file", fileName: "c.pcap", data: []byte("x")}},
	}
	for name, parts := range ok {
		if r := upload(t, srv, key, parts); r.status != 200 || r.error {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

func TestRejectWith200(t *testing.T) {
	_, srv := start(t, sagefake.Options{RejectWith200: true})
	if r := upload(t, srv, key, goodParts("a.bf")[:2]); r.status != 200 || !r.error {
		t.Errorf("%d %v", r.status, r.error)
	}
}

func TestSizeCap(t *testing.T) {
	f, srv := start(t, sagefake.Options{MaxUploadSize: 1000})
	big := goodParts("a.bf")
	big[2].data = append(secflow("a.bf"), bytes.Repeat([]byte(" "), 2000)...)
	if r := upload(t, srv, key, big); r.status != 413 || !r.error {
		t.Errorf("file over the cap: %d", r.status)
	}
	big[2].data = bytes.Repeat([]byte("x"), 200<<10) // the whole body is over the cap
	if r := upload(t, srv, key, big); r.status != 413 {
		t.Errorf("body over the cap: %d", r.status)
	}
	if len(f.Uploads()) != 0 {
		t.Error("an oversized upload was stored")
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestUploadListSample(t *testing.T) {
	// The fake's clock jumps when the test says (a 300 ms delay on the wall clock made the "while
	// processing" checks fail on a loaded machine).
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f, srv := start(t, sagefake.Options{ProcessingDelay: time.Hour, Now: now})
	var ids []string
	for range 2 { // the same file twice: two samples (no idempotency)
		r := upload(t, srv, key, goodParts("web01_1700000100.bf"))
		var b struct{ SampleID, FileName, UUID, Link string }
		if err := json.Unmarshal(r.body, &b); err != nil || r.status != 200 || r.error {
			t.Fatalf("upload: %d %s", r.status, r.body)
		}
		if !hex32.MatchString(b.SampleID) || b.FileName != "web01_1700000100.bf" || !strings.HasSuffix(b.Link, "/samples/"+b.SampleID) {
			t.Fatalf("reply %s", r.body)
		}
		dec, err := base64.StdEncoding.DecodeString(b.UUID)
		if err != nil || !strings.HasSuffix(string(dec), "#hash#"+b.SampleID) {
			t.Errorf("public uuid %q decodes to %q", b.UUID, dec)
		}
		ids = append(ids, b.SampleID)
	}
	if ids[0] == ids[1] || len(f.Uploads()) != 2 {
		t.Fatalf("two uploads of one file: ids %v", ids)
	}
	upload(t, srv, otherKey, goodParts("other.bf"))

	var list []map[string]any
	r := get(t, srv, key, "/upload/v1.0/uploads/list")
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 2 {
		t.Fatalf("list %s", r.body)
	}
	e := list[0]
	if e["fileName"] != "web01_1700000100.bf" || e["processed"] != false || e["uuid"] != ids[0] || e["fileType"] != "secflow" {
		t.Errorf("list entry %v", e)
	}
	if _, ok := e["dateProcessed"]; ok {
		t.Error("dateProcessed before processing")
	}
	if !regexp.MustCompile(`date=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}/`).MatchString(e["fullS3FilePath"].(string)) ||
		!regexp.MustCompile(`^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$`).MatchString(e["dateCreated"].(string)) {
		t.Errorf("dates %v %v", e["fullS3FilePath"], e["dateCreated"])
	}
	if r := get(t, srv, key, "/sec/v1.0/samples/"+ids[0]); r.status != 200 || string(r.body) != "{}" {
		t.Errorf("sample while processing: %d %s", r.status, r.body)
	}
	if r := get(t, srv, key, "/sec/v1.0/samples/"+ids[0]+"/list"); r.status != 200 || string(r.body) != "[]" {
		t.Errorf("flows while processing: %d %s", r.status, r.body)
	}
	skew.Store(int64(2 * time.Hour)) // processing is over
	r = get(t, srv, key, "/sec/v1.0/samples/"+ids[0])
	var s map[string]string
	if err := json.Unmarshal(r.body, &s); err != nil || s["hash"] != ids[0] || s["trafficDate"] != "1700000100.25" || s["id"] == "" || s["dateCreated"] == "" {
		t.Errorf("processed sample %s", r.body)
	}
	r = get(t, srv, key, "/upload/v1.0/uploads/list")
	_ = json.Unmarshal(r.body, &list)
	if list[0]["processed"] != true || list[0]["dateProcessed"] == nil {
		t.Errorf("processed list entry %v", list[0])
	}
	r = get(t, srv, key, "/sec/v1.0/samples/"+ids[0]+"/list")
	var flows []map[string]string
	if err := json.Unmarshal(r.body, &flows); err != nil || len(flows) != 1 || flows[0]["sourceData"] != "10.0.0.5:40000" ||
		flows[0]["destinationBytes"] != "1000" || flows[0]["duration"] != "1.5" || flows[0]["flowCategory"] != sagefake.CategoryWebTLS {
		t.Errorf("flows %s", r.body)
	}
	// Another key's sample, an unknown sample, an unknown path, a wrong method.
	if r := get(t, srv, otherKey, "/sec/v1.0/samples/"+ids[0]); r.status != 404 || bodyString(r) != "sample not found" {
		t.Errorf("another key's sample: %d %s", r.status, r.body)
	}
	if r := get(t, srv, key, "/sec/v1.0/samples/00000000000000000000000000000000"); r.status != 404 {
		t.Errorf("unknown sample: %d", r.status)
	}
	if r := get(t, srv, key, "/upload/v1.0/list"); r.status != 404 {
		t.Errorf("superseded list path: %d", r.status)
	}
	if r := get(t, srv, key, "/upload/v1.0/uploader"); r.status != 405 {
		t.Errorf("GET uploader: %d", r.status)
	}
}

func TestFaults(t *testing.T) {
	f, srv := start(t, sagefake.Options{})
	f.Inject(sagefake.RouteUpload,
		sagefake.Fault{Kind: sagefake.FaultStatus, Status: 429, RetryAfter: "7"},
		sagefake.Fault{Kind: sagefake.FaultStatus, Status: 503},
		sagefake.Fault{Kind: sagefake.FaultErrorTrue, Message: "nope"})
	if r := upload(t, srv, key, goodParts("a.bf")); r.status != 429 || r.header.Get("Retry-After") != "7" || !r.error {
		t.Errorf("429: %d %q", r.status, r.header.Get("Retry-After"))
	}
	if r := upload(t, srv, key, goodParts("a.bf")); r.status != 503 {
		t.Errorf("503: %d", r.status)
	}
	if r := upload(t, srv, key, goodParts("a.bf")); r.status != 200 || !r.error || bodyString(r) != "nope" {
		t.Errorf("error true: %d %s", r.status, r.body)
	}
	if len(f.Uploads()) != 0 {
		t.Error("a faulted upload was stored")
	}
	if r := upload(t, srv, key, goodParts("a.bf")); r.status != 200 || r.error {
		t.Errorf("after the faults: %d", r.status)
	}

	// A cut after accepting: the client gets an error, the fake has the upload.
	f.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultCut, Accept: true})
	body, ct := multipartBody(t, goodParts("cut.bf"))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload/v1.0/uploader", bytes.NewReader(body))
	req.Header.Set("apikey", key)
	req.Header.Set("Content-Type", ct)
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("cut: got a reply %d", resp.StatusCode)
	}
	ups := f.Uploads()
	if len(ups) != 2 || ups[1].FileName != "cut.bf" {
		t.Fatalf("cut with accept: %d uploads", len(ups))
	}

	// A hang: the client gives up; the fake returns when it does. The client gives up once its request
	// has reached the fake (an event, not a timer: a fixed client timeout could expire before the
	// request arrived on a loaded machine, and the fake then had nothing to record).
	f.Inject(sagefake.RouteList, sagefake.Fault{Kind: sagefake.FaultHang})
	arrived := make(chan struct{}, 1)
	hs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		f.ServeHTTP(w, r)
	}))
	defer hs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/upload/v1.0/uploads/list", nil)
	req.Header.Set("apikey", key)
	replied := make(chan error, 1)
	go func() {
		resp, err := hs.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		replied <- err
	}()
	select {
	case <-arrived:
	case err := <-replied:
		t.Fatalf("hang: the client returned (%v) before the request reached the fake", err)
	case <-time.After(10 * time.Second):
		t.Fatal("hang: the request never reached the fake")
	}
	cancel()
	if err := <-replied; err == nil {
		t.Fatal("hang: got a reply")
	}
	hs.Close() // waits for the fake's handler: it returns once the client has given up
	reqs := f.Requests()
	last := reqs[len(reqs)-1]
	if last.Route != sagefake.RouteList || last.Fault != sagefake.FaultHang || last.Status != 0 {
		t.Errorf("last request %+v", last)
	}
}
