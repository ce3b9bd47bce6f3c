package collector

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

// unwritableStore answers reads but refuses the write probe (failProbe) or batch commits (failSave),
// as a store on a full disk does.
type unwritableStore struct {
	store.Store
	failProbe, failSave atomic.Bool
}

func (u *unwritableStore) CheckWritable(ctx context.Context, collector string) error {
	if u.failProbe.Load() {
		return errors.New("injected: database or disk is full")
	}
	return u.Store.CheckWritable(ctx, collector)
}

func (u *unwritableStore) SaveBatches(ctx context.Context, b []store.Batch) ([]store.Outcome, error) {
	if u.failSave.Load() {
		return nil, errors.New("injected: database or disk is full")
	}
	return u.Store.SaveBatches(ctx, b)
}

// plainHTTP keeps no idle connections, so tests leave no connection goroutines behind.
var plainHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testTimeout}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := plainHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// /readyz and the gRPC health service say NOT_SERVING while the store refuses writes, while batch
// commits fail, and while the samples directory cannot take a file, and SERVING again after each;
// /healthz stays 200 throughout. (Issue #14 item 12: health said SERVING through 202 refused batches.)
func TestReadinessFollowsWrites(t *testing.T) {
	p := newTestPKI(t)
	var us *unwritableStore
	g := startCollectorWith(t, p, Config{Window: 60 * time.Second}, collectorOptions{healthEvery: 20 * time.Millisecond, wrap: func(st store.Store) store.Store {
		us = &unwritableStore{Store: st}
		return us
	}})
	web := httptest.NewServer(g.c.HealthHandler())
	defer web.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	hc := healthpb.NewHealthClient(dialAs(t, g.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	grpcStatus := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	ingest := flowfleetv1.IngestService_ServiceDesc.ServiceName
	waitReady := func(what string) {
		t.Helper()
		waitFor(t, what+": /readyz 200", func() bool { code, _ := get(t, web.URL+"/readyz"); return code == 200 })
		if s := grpcStatus(""); s != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s: gRPC health %v with /readyz 200", what, s)
		}
		if s := grpcStatus(ingest); s != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s: ingest health %v with /readyz 200", what, s)
		}
		if v := metricValue(t, g.c.metrics.ready); v != 1 {
			t.Fatalf("%s: flowfleet_collector_ready = %v", what, v)
		}
	}
	waitNotReady := func(what, reason string) {
		t.Helper()
		var body string
		waitFor(t, what+": /readyz 503", func() bool {
			var code int
			code, body = get(t, web.URL+"/readyz")
			return code == http.StatusServiceUnavailable
		})
		if !strings.Contains(body, reason) {
			t.Fatalf("%s: /readyz says %q, want it to mention %q", what, body, reason)
		}
		waitFor(t, what+": gRPC health NOT_SERVING", func() bool {
			return grpcStatus("") == healthpb.HealthCheckResponse_NOT_SERVING &&
				grpcStatus(ingest) == healthpb.HealthCheckResponse_NOT_SERVING
		})
		if code, body := get(t, web.URL+"/healthz"); code != 200 || body != "ok\n" {
			t.Fatalf("%s: /healthz %d %q; liveness must not follow the store", what, code, body)
		}
	}

	waitReady("start")
	us.failProbe.Store(true)
	waitNotReady("write probe failing", "store cannot write: injected: database or disk is full")
	us.failProbe.Store(false)
	waitReady("write probe passing again")

	// Commits that fail (a large transaction on a nearly full disk) while the probe still passes.
	sensor := dialAs(t, g.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{}))
	ws := time.Now().Truncate(time.Minute).Unix()
	us.failSave.Store(true)
	s, err := openSensor(t, sensor, "stream-1", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(ws, 3, 0))
	if _, err := s.stream.Recv(); err == nil {
		t.Fatal("a batch that could not be stored was answered")
	}
	waitNotReady("commits failing", "batch commits are failing")
	us.failSave.Store(false)
	s, err = openSensor(t, sensor, "stream-1", 60)
	if err != nil {
		t.Fatal(err)
	}
	s.send(1, testFlows(ws, 3, 0))
	if seq, dup := s.ack(); seq != 1 || dup {
		t.Fatalf("ack %d dup %v", seq, dup)
	}
	waitReady("a commit succeeded")

	// The samples directory cannot take files (here: a file stands where the directory was).
	dir := g.c.SampleDir()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitNotReady("samples directory unusable", "samples directory cannot write")
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	waitReady("samples directory back")
	if v := metricValue(t, g.c.metrics.readinessFailures.WithLabelValues(probeCommits)); v < 1 {
		t.Fatalf("readiness failures (commits) = %v", v)
	}
}

// /readyz is 503 before the first probe, when the last probe is too old (a probe stuck on a store
// that does not answer), and once shutdown starts.
func TestReadyzStates(t *testing.T) {
	h := &healthState{interval: 5 * time.Second}
	now := time.Now()
	if ok, why := h.status(now); ok || !strings.Contains(why, "starting") {
		t.Fatalf("before any probe: %v %q", ok, why)
	}
	h.set(true, "", now)
	if ok, _ := h.status(now.Add(time.Second)); !ok {
		t.Fatal("not ready right after a passing probe")
	}
	if ok, why := h.status(now.Add(probeTimeout + 11*time.Second)); ok || !strings.Contains(why, "has not finished") {
		t.Fatalf("stale probe: %v %q", ok, why)
	}
	h.noteCommit(errors.New("disk full"), now)
	if why, failing := h.commitsFailing(now.Add(commitFailHold - time.Second)); !failing || why != "disk full" {
		t.Fatalf("commits failing: %v %q", failing, why)
	}
	if _, failing := h.commitsFailing(now.Add(commitFailHold + time.Second)); failing {
		t.Fatal("a commit failure with no commit since is held forever")
	}
	h.noteCommit(nil, now.Add(time.Millisecond))
	if _, failing := h.commitsFailing(now.Add(time.Second)); failing {
		t.Fatal("a success after the failure does not clear it")
	}
	h.stopping = true
	if ok, why := h.status(now); ok || why != "shutting down" {
		t.Fatalf("shutting down: %v %q", ok, why)
	}
}
