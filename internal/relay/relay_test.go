package relay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/internal/store"
)

const ws0 = int64(1_700_000_100)

// The upload is exactly what SeclarityIO's clients send: the apikey header and nothing else carrying
// the key; multipart/form-data with the fields type and fileName and the file part (filename = the .bf
// name, application/octet-stream), nothing more.
func TestUploadRequestShape(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.start(e.config())
	id, name := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayed)

	ups := e.fake.Uploads()
	if len(ups) != 1 || s.RemoteID != ups[0].SampleID || len(s.RemoteID) != 32 || s.RelayError != "" {
		t.Fatalf("sample %+v, fake uploads %d", s, len(ups))
	}
	reqs := e.fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1 upload: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/upload/v1.0/uploader" || r.RawQuery != "" || r.Status != 200 {
		t.Fatalf("request %s %s?%s → %d", r.Method, r.Path, r.RawQuery, r.Status)
	}
	if got := r.Header.Values("apikey"); len(got) != 1 || got[0] != testKey {
		t.Errorf("apikey header %d values, want the key once", len(got))
	}
	for _, h := range []string{"Authorization", "X-Api-Key", "Cookie"} {
		if r.Header.Get(h) != "" {
			t.Errorf("header %s is set", h)
		}
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	var names []string
	for _, p := range r.Parts {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "type,fileName,file" {
		t.Fatalf("parts %v, want exactly type, fileName, file", names)
	}
	typ, _ := r.Part("type")
	fn, _ := r.Part("fileName")
	file, _ := r.Part("file")
	if string(typ.Data) != "secflow" || typ.FileName != "" || typ.ContentType != "" {
		t.Errorf("type part %q filename %q content type %q", typ.Data, typ.FileName, typ.ContentType)
	}
	if string(fn.Data) != name || fn.FileName != "" || fn.ContentType != "" {
		t.Errorf("fileName part %q filename %q content type %q", fn.Data, fn.FileName, fn.ContentType)
	}
	if file.FileName != name || file.ContentType != "application/octet-stream" || string(file.Data) != string(sampleContent(name)) {
		t.Errorf("file part: filename %q, content type %q, %d bytes", file.FileName, file.ContentType, len(file.Data))
	}
	if got := e.counter("flowfleet_relay_uploads_attempted_total"); got != 1 {
		t.Errorf("attempted %v", got)
	}
	if got := e.counter("flowfleet_relay_uploads_succeeded_total"); got != 1 {
		t.Errorf("succeeded %v", got)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "flowfleet_relay_") {
			t.Errorf("metric %s is not flowfleet_relay_*", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), testKey) || (lp.GetName() != "reason" && lp.GetName() != "step") {
					t.Errorf("metric %s label %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func TestRetryAfterHonouredOn429(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultStatus, Status: 429, RetryAfter: "1"})
	e.start(e.config()) // backoff would retry within 20 ms: only Retry-After explains a 1 s wait
	id, _ := e.addSample("web01", ws0)
	e.waitState(id, store.StateRelayed)
	ups := e.fake.RequestsTo(sagefake.RouteUpload)
	if len(ups) != 2 || ups[0].Status != 429 || ups[1].Status != 200 {
		t.Fatalf("uploads %d", len(ups))
	}
	if gap := ups[1].Time.Sub(ups[0].Time); gap < 990*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 1", gap)
	}
	if n := len(e.fake.RequestsTo(sagefake.RouteList)); n != 0 {
		t.Errorf("a 429 is not ambiguous, but the uploads list was read %d times", n)
	}
	if got := e.counter("flowfleet_relay_uploads_failed_total", "reason", "rate_limited"); got != 1 {
		t.Errorf("failed{rate_limited} %v", got)
	}
}

func TestRetryAfterHonouredOn503(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultStatus, Status: 503, RetryAfter: "1"})
	e.start(e.config())
	id, _ := e.addSample("web01", ws0)
	e.waitState(id, store.StateRelayed)
	ups := e.fake.RequestsTo(sagefake.RouteUpload)
	if len(ups) != 2 || ups[1].Time.Sub(ups[0].Time) < 990*time.Millisecond {
		t.Fatalf("uploads %d, gap %s", len(ups), ups[len(ups)-1].Time.Sub(ups[0].Time))
	}
}

func TestFive503sThenSuccessUploadsOnce(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	for range 5 {
		e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultStatus, Status: 503})
	}
	e.start(e.config())
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayed)
	if ups := e.fake.Uploads(); len(ups) != 1 || ups[0].SampleID != s.RemoteID {
		t.Fatalf("%d uploads stored, sample remote id %q", len(ups), s.RemoteID)
	}
	reqs := e.fake.RequestsTo(sagefake.RouteUpload)
	if len(reqs) != 6 {
		t.Fatalf("%d upload requests, want 6", len(reqs))
	}
	// Backoff grows: the last gap is longer than the first.
	if first, last := reqs[1].Time.Sub(reqs[0].Time), reqs[5].Time.Sub(reqs[4].Time); last <= first/2 || first < 10*time.Millisecond {
		t.Errorf("gaps: first %s, last %s", first, last)
	}
	if got := e.counter("flowfleet_relay_uploads_failed_total", "reason", "unavailable"); got != 5 {
		t.Errorf("failed{unavailable} %v", got)
	}
	if got := e.counter("flowfleet_relay_uploads_attempted_total"); got != 6 {
		t.Errorf("attempted %v", got)
	}
}

func TestForbiddenStopsRetryingAndMarksSample(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	cfg := e.config()
	cfg.APIKey = wrongKey
	e.start(cfg)
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayFailed)
	time.Sleep(300 * time.Millisecond) // 15 backoff periods: no retry may come
	if n := len(e.fake.Requests()); n != 1 {
		t.Fatalf("%d requests after a 403, want 1", n)
	}
	if !strings.Contains(s.RelayError, "403") || !strings.Contains(s.RelayError, "auth") || s.RemoteID != "" {
		t.Errorf("relay error %q", s.RelayError)
	}
	if c, err := e.st.SampleContent(context.Background(), id); err != nil || len(c) == 0 {
		t.Errorf("the sample's content is gone: %v", err)
	}
	if st, _ := e.st.OutboxStats(context.Background()); st.Queued != 0 {
		t.Errorf("still queued: %+v", st)
	}
	if got := e.counter("flowfleet_relay_samples_failed_total", "reason", "auth"); got != 1 {
		t.Errorf("samples_failed{auth} %v", got)
	}
	if e.fake.RequestCount(wrongKey) != 1 || e.fake.RequestCount(testKey) != 0 {
		t.Errorf("per-key counts: wrong %d, right %d", e.fake.RequestCount(wrongKey), e.fake.RequestCount(testKey))
	}
}

// Permanent failures: marked, kept, not retried.
func TestPermanentFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   sagefake.Options
		fault  *sagefake.Fault
		reason string
	}{
		{"400", sagefake.Options{}, &sagefake.Fault{Kind: sagefake.FaultStatus, Status: 400, Message: "invalid type"}, "rejected"},
		{"401", sagefake.Options{}, &sagefake.Fault{Kind: sagefake.FaultStatus, Status: 401}, "auth"},
		{"413", sagefake.Options{MaxUploadSize: 100}, nil, "too_large"},
		{"200 error true", sagefake.Options{}, &sagefake.Fault{Kind: sagefake.FaultErrorTrue, Message: "bad file"}, "rejected"},
		{"200 error true ending in 403", sagefake.Options{}, &sagefake.Fault{Kind: sagefake.FaultErrorTrue, Message: "Request unauthorized: 403"}, "auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			if tc.fault != nil {
				e.fake.Inject(sagefake.RouteUpload, *tc.fault)
			}
			e.start(e.config())
			id, _ := e.addSample("web01", ws0)
			s := e.waitState(id, store.StateRelayFailed)
			time.Sleep(200 * time.Millisecond)
			if n := len(e.fake.Requests()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
			if !strings.Contains(s.RelayError, tc.reason) {
				t.Errorf("relay error %q lacks %q", s.RelayError, tc.reason)
			}
			if got := e.counter("flowfleet_relay_samples_failed_total", "reason", tc.reason); got != 1 {
				t.Errorf("samples_failed{%s} %v", tc.reason, got)
			}
		})
	}
}

func TestHangTimesOutAndRetries(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultHang})
	cfg := e.config()
	cfg.Timeout = 300 * time.Millisecond
	e.start(cfg)
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayed)
	ups := e.fake.RequestsTo(sagefake.RouteUpload)
	if len(ups) != 2 || ups[0].Fault != sagefake.FaultHang || ups[1].Status != 200 {
		t.Fatalf("%d upload requests", len(ups))
	}
	if gap := ups[1].Time.Sub(ups[0].Time); gap < 300*time.Millisecond {
		t.Errorf("second upload %s after the first: the timeout did not run its course", gap)
	}
	// The request had been sent, so its outcome was unknown: the list was checked first.
	if n := len(e.fake.RequestsTo(sagefake.RouteList)); n != 1 {
		t.Errorf("uploads list read %d times, want 1", n)
	}
	if ups := e.fake.Uploads(); len(ups) != 1 || ups[0].SampleID != s.RemoteID {
		t.Fatalf("%d uploads stored", len(ups))
	}
	if got := e.counter("flowfleet_relay_uploads_failed_total", "reason", "timeout"); got != 1 {
		t.Errorf("failed{timeout} %v", got)
	}
}

// The connection is cut after the fake accepted the upload: the client cannot know. It must find the
// upload in the list rather than send a second copy.
func TestCutConnectionNoDuplicate(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultCut, Accept: true})
	e.start(e.config())
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayed)
	ups := e.fake.Uploads()
	if len(ups) != 1 {
		t.Fatalf("%d copies uploaded, want 1", len(ups))
	}
	if s.RemoteID != ups[0].SampleID {
		t.Errorf("remote id %q, the fake's sample is %q", s.RemoteID, ups[0].SampleID)
	}
	if n := len(e.fake.RequestsTo(sagefake.RouteUpload)); n != 1 {
		t.Errorf("%d upload requests, want 1", n)
	}
	if n := len(e.fake.RequestsTo(sagefake.RouteList)); n != 1 {
		t.Errorf("uploads list read %d times, want 1", n)
	}
	if got := e.counter("flowfleet_relay_uploads_recovered_total"); got != 1 {
		t.Errorf("recovered %v", got)
	}
}

// A cut before the fake stored anything: the list check finds nothing and the upload is sent again.
func TestCutConnectionNotAcceptedUploadsAgain(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultCut})
	e.start(e.config())
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayed)
	if ups := e.fake.Uploads(); len(ups) != 1 || ups[0].SampleID != s.RemoteID {
		t.Fatalf("%d uploads", len(ups))
	}
	if n := len(e.fake.RequestsTo(sagefake.RouteUpload)); n != 2 {
		t.Errorf("%d upload requests, want 2", n)
	}
}

// A 500 after the fake stored the upload is ambiguous too.
func TestServerErrorAfterAcceptNoDuplicate(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultStatus, Status: 500, Accept: true})
	e.start(e.config())
	id, _ := e.addSample("web01", ws0)
	e.waitState(id, store.StateRelayed)
	if ups := e.fake.Uploads(); len(ups) != 1 {
		t.Fatalf("%d copies uploaded, want 1", len(ups))
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	for range 10 {
		e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultStatus, Status: 503})
	}
	cfg := e.config()
	cfg.MaxAttempts = 3
	e.start(cfg)
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayFailed)
	if !strings.Contains(s.RelayError, "gave up after 3 attempts") {
		t.Errorf("relay error %q", s.RelayError)
	}
	if n := len(e.fake.RequestsTo(sagefake.RouteUpload)); n != 3 {
		t.Errorf("%d uploads, want 3", n)
	}
	if got := e.counter("flowfleet_relay_samples_failed_total", "reason", "gave_up"); got != 1 {
		t.Errorf("samples_failed{gave_up} %v", got)
	}
}

// The outbox survives a restart: a worker stopped while the service is down, the store closed and
// reopened, and a new worker finishes the job.
func TestRestartResumesQueue(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	for range 100 {
		e.fake.Inject(sagefake.RouteUpload, sagefake.Fault{Kind: sagefake.FaultStatus, Status: 503, RetryAfter: "1"})
	}
	e.start(e.config())
	id1, _ := e.addSample("web01", ws0)
	id2, _ := e.addSample("web02", ws0)
	waitFor(t, "both first attempts", func() bool { return len(e.fake.RequestsTo(sagefake.RouteUpload)) >= 2 })
	waitFor(t, "the queue gauge", func() bool { return e.counter("flowfleet_relay_queue_length") == 2 })
	time.Sleep(20 * time.Millisecond)
	if age := e.counter("flowfleet_relay_oldest_queued_age_seconds"); age <= 0 {
		t.Errorf("oldest queued age %v", age)
	}
	e.stop()
	e.st.Close()

	e.fake = sagefake.New(sagefake.Options{Keys: []string{testKey}, Log: e.log}) // the service is back
	e.serve(e.fake)
	e.open()
	e.start(e.config()) // the entries are due when their Retry-After (1 s) has passed
	e.waitState(id1, store.StateRelayed)
	e.waitState(id2, store.StateRelayed)
	if ups := e.fake.Uploads(); len(ups) != 2 {
		t.Fatalf("%d uploads after the restart, want 2", len(ups))
	}
	waitFor(t, "an empty queue", func() bool { return e.counter("flowfleet_relay_queue_length") == 0 })
}

// A collector that died in the middle of an upload that reached the service: after the restart the
// entry is ambiguous and the upload is found, not repeated.
func TestRestartAfterCrashMidUploadNoDuplicate(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	id, name := e.addSample("web01", ws0)
	if got, err := e.st.ClaimOutbox(context.Background(), "test-collector", time.Now(), time.Hour, 1); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	// The "crashed" worker's upload reached the service.
	client, err := relay.NewClient(relay.ClientOptions{BaseURL: e.srv.URL, APIKey: testKey, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Upload(context.Background(), name, sampleContent(name), "secflow")
	if err != nil {
		t.Fatal(err)
	}
	e.st.Close()
	e.open()
	e.start(e.config()) // same owner: its claims are released at start
	s := e.waitState(id, store.StateRelayed)
	if s.RemoteID != res.SampleID {
		t.Errorf("remote id %q, want the first upload's %q", s.RemoteID, res.SampleID)
	}
	if n := len(e.fake.Uploads()); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
}

func TestPollMarksProcessed(t *testing.T) {
	// The fake's clock moves when the test says, so the sample is processed after the polls the test
	// waited for (with a 300 ms delay on the wall clock, a loaded machine polled once, too late, and
	// the test failed under -race).
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := newEnv(t, sagefake.Options{ProcessingDelay: time.Hour, Now: now})
	cfg := e.config()
	cfg.PollInterval = 100 * time.Millisecond
	cfg.PollDeadline = 24 * time.Hour
	e.start(cfg)
	id, _ := e.addSample("web01", ws0)
	waitFor(t, "two polls", func() bool { return len(e.fake.RequestsTo(sagefake.RouteSample)) >= 2 })
	if s, err := e.st.GetSample(context.Background(), id); err != nil || s.State == store.StateProcessed {
		t.Fatalf("sample processed before the fake processed it: %v %v", s, err)
	}
	skew.Store(int64(2 * time.Hour))
	s := e.waitState(id, store.StateProcessed)
	if s.RemoteID == "" {
		t.Fatal("no remote id")
	}
	polls := e.fake.RequestsTo(sagefake.RouteSample)
	if len(polls) < 3 {
		t.Errorf("%d polls, want the 2 before processing and at least one after", len(polls))
	}
	for i := 1; i < len(polls); i++ {
		if gap := polls[i].Time.Sub(polls[i-1].Time); gap < 95*time.Millisecond {
			t.Errorf("polled %s after the previous poll, want the 100 ms interval", gap)
		}
	}
	if got := e.counter("flowfleet_relay_samples_processed_total"); got != 1 {
		t.Errorf("processed %v", got)
	}
}

func TestPollGivesUpAtDeadline(t *testing.T) {
	e := newEnv(t, sagefake.Options{ProcessingDelay: time.Hour})
	cfg := e.config()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.PollDeadline = 300 * time.Millisecond
	e.start(cfg)
	id, _ := e.addSample("web01", ws0)
	e.waitState(id, store.StateRelayed)
	waitFor(t, "polling to stop", func() bool {
		st, _ := e.st.OutboxStats(context.Background())
		return st.Polling == 0 && len(e.fake.RequestsTo(sagefake.RouteSample)) > 0
	})
	if s, _ := e.st.GetSample(context.Background(), id); s.State != store.StateRelayed {
		t.Errorf("state %s", s.State)
	}
}

// The key never leaves through an error, a stored relay error, a log line or a printed config, even
// when the server echoes it.
func TestKeyNeverLeaks(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	e.fake.Inject(sagefake.RouteUpload,
		sagefake.Fault{Kind: sagefake.FaultStatus, Status: 503, Message: "overloaded, key " + testKey + " throttled"},
		sagefake.Fault{Kind: sagefake.FaultStatus, Status: 400, Message: "bad request for apikey=" + testKey})
	cfg := e.config()
	e.start(cfg)
	id, _ := e.addSample("web01", ws0)
	s := e.waitState(id, store.StateRelayFailed)
	if strings.Contains(s.RelayError, testKey) || !strings.Contains(s.RelayError, "[redacted]") {
		t.Errorf("relay error %q", s.RelayError)
	}
	for _, text := range []string{fmt.Sprintf("%v %+v %#v %s %q %x", cfg, cfg, cfg, cfg.APIKey, cfg.APIKey, cfg.APIKey),
		mustJSON(t, relay.Config{BaseURL: cfg.BaseURL, APIKey: cfg.APIKey})} {
		if strings.Contains(text, testKey) || strings.Contains(text, fmt.Sprintf("%x", testKey)) {
			t.Errorf("printed config shows the key: %s", text)
		}
	}
	client, err := relay.NewClient(relay.ClientOptions{BaseURL: e.srv.URL, APIKey: testKey, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Inject(sagefake.RouteList, sagefake.Fault{Kind: sagefake.FaultErrorTrue, Message: testKey})
	_, err = client.ListUploads(context.Background())
	if err == nil || strings.Contains(err.Error(), testKey) {
		t.Errorf("list error %v", err)
	}
	if strings.Contains(logBuf.String(), testKey) {
		t.Error("the key is in the log output")
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestClientEndpoints(t *testing.T) {
	var skew atomic.Int64 // the fake's clock jumps when the test says, not after a sleep
	e := newEnv(t, sagefake.Options{ProcessingDelay: time.Hour, Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	client, err := relay.NewClient(relay.ClientOptions{BaseURL: e.srv.URL + "/", APIKey: testKey, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "web01_1700000100.bf"
	before := time.Now().UTC().Add(-time.Second)
	res, err := client.Upload(ctx, name, sampleContent(name), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.SampleID) != 32 || res.FileName != name || res.Link == "" || res.UUID == "" {
		t.Fatalf("upload result %+v", res)
	}
	info, err := client.Sample(ctx, res.SampleID)
	if err != nil || info.Processed {
		t.Fatalf("sample right after upload: %+v %v", info, err)
	}
	list, err := client.ListUploads(ctx)
	if err != nil || len(list) != 1 || list[0].UUID != res.SampleID || list[0].FileName != name || list[0].Processed || list[0].FileType != "secflow" {
		t.Fatalf("list %+v %v", list, err)
	}
	if at, ok := list[0].UploadedAt(); !ok || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("uploaded at %v %v", at, ok)
	}
	skew.Store(int64(2 * time.Hour)) // processing is over
	info, err = client.Sample(ctx, res.SampleID)
	if err != nil || !info.Processed || info.Hash != res.SampleID || info.TrafficDate != "1700000100.5" {
		t.Fatalf("sample after processing: %+v %v", info, err)
	}
	if info.PublicID() != res.UUID {
		t.Errorf("public id %q, upload said %q", info.PublicID(), res.UUID)
	}
	flows, err := client.SampleFlows(ctx, res.SampleID)
	if err != nil || len(flows) != 1 || flows[0].SourceData != "10.0.0.5:40000" || flows[0].DestinationData != "example.com:443" ||
		flows[0].SourceBytes != "100" || flows[0].FlowCategory != sagefake.CategoryWebTLS {
		t.Fatalf("flows %+v %v", flows, err)
	}
	found, err := client.FindUpload(ctx, name, time.Now())
	if err != nil || found == nil || found.UUID != res.SampleID {
		t.Errorf("find %+v %v", found, err)
	}
	if found, _ := client.FindUpload(ctx, name, time.Now().Add(10*time.Minute)); found != nil {
		t.Errorf("an upload older than the window matched: %+v", found)
	}
	_, err = client.Sample(ctx, "0123456789abcdef0123456789abcdef")
	var ae *relay.Error
	if !errors.As(err, &ae) || ae.Status != 404 || !ae.Permanent() {
		t.Errorf("unknown sample: %v", err)
	}
	for _, r := range e.fake.Requests() {
		if r.Header.Get("apikey") != testKey {
			t.Errorf("%s %s without the apikey header", r.Method, r.Path)
		}
	}
}

func TestBaseURLChecks(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://api.seclarity.io":       true,
		"https://gw.example.com/prefix/": true,
		"http://127.0.0.1:8088":          true,
		"http://localhost:8088":          true,
		"http://[::1]:8088":              true,
		"http://api.seclarity.io":        false,
		"ftp://api.seclarity.io":         false,
		"https://user:pw@api.example":    false,
		"https://api.example/?k=v":       false,
		"api.seclarity.io":               false,
	} {
		if _, err := relay.ParseBaseURL(url); (err == nil) != ok {
			t.Errorf("%s: %v", url, err)
		}
	}
}

// A redirect is not followed: the key would go with it to wherever it points.
func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	client, err := relay.NewClient(relay.ClientOptions{BaseURL: redirector.URL, APIKey: testKey, HTTPClient: redirector.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Upload(context.Background(), "x.bf", []byte("{}"), "")
	var ae *relay.Error
	if !errors.As(err, &ae) || ae.Reason != relay.ReasonRedirect || !ae.Permanent() {
		t.Fatalf("error %v", err)
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestWorkerNeedsKey(t *testing.T) {
	if _, err := relay.NewWorker(nil, relay.Config{}, nil, nil); err == nil {
		t.Fatal("a worker without a key")
	}
	if _, err := relay.NewWorker(nil, relay.Config{APIKey: testKey, Type: "exe"}, nil, nil); err == nil {
		t.Fatal("a bad type was accepted")
	}
}

func TestConcurrencyBounded(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	var inflight, peak atomic.Int32
	fake := e.fake
	// The first requests are held until three are in flight at once (an event, not a sleep: a sleep
	// let the uploads run one after another on a loaded machine, so the peak stayed below 3). A
	// request counts from the handler's start until just before its answer is written, an interval
	// within the client's, so the peak never exceeds what the relay really has in flight.
	full := make(chan struct{})
	var fullOnce sync.Once
	e.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n >= 3 {
			fullOnce.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-r.Context().Done():
		case <-time.After(testTimeout / 4): // the relay never had 3 in flight: the peak check fails
		}
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, r)
		inflight.Add(-1)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	cfg := e.config()
	cfg.Concurrency = 3
	for i := range 10 {
		e.addSample(fmt.Sprintf("h%02d", i), ws0)
	}
	e.start(cfg)
	waitFor(t, "all uploads", func() bool { return len(fake.Uploads()) == 10 })
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3", p)
	}
}

// A sample whose stored content no longer matches its checksum is not uploaded: it is marked
// relay_failed at once (reading it again cannot repair it) and counted with reason corrupt.
func TestDamagedContentNotUploaded(t *testing.T) {
	e := newEnv(t, sagefake.Options{})
	id, _ := e.addSample("web01", ws0)
	db, err := sql.Open("sqlite", "file:"+e.dsn+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE sample_data SET content = ? WHERE id = ?", []byte("not what was written"), id); err != nil {
		t.Fatal(err)
	}
	e.start(e.config())
	s := e.waitState(id, store.StateRelayFailed)
	if !strings.Contains(s.RelayError, "checksum") {
		t.Errorf("relay error %q does not say the content is damaged", s.RelayError)
	}
	if n := len(e.fake.Uploads()); n != 0 {
		t.Fatalf("%d uploads of damaged content", n)
	}
	if got := e.counter("flowfleet_relay_samples_failed_total", "reason", "corrupt"); got != 1 {
		t.Errorf("samples_failed{corrupt} %v", got)
	}
}
