package relay_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/internal/store"
)

// The keys of the test run. Every log line of every test (the relay's and the fake's) goes to logBuf,
// and TestMain fails the run if either key shows up in it.
const (
	testKey  = "nsk_live_7f3c9a1e5b2d4c6f8a0e1d3b5c7f9a2e"
	wrongKey = "nsk_live_0000deadbeef0000deadbeef00000000"
)

var logBuf lockedBuffer

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLog logs at debug level, in JSON and text alternately per test so that both handlers are checked.
func testLog(t *testing.T) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	if len(t.Name())%2 == 0 {
		return slog.New(slog.NewJSONHandler(&logBuf, opts)).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(&logBuf, opts)).With("test", t.Name())
}

func TestMain(m *testing.M) {
	code := m.Run()
	out := logBuf.String()
	for _, k := range []string{testKey, wrongKey} {
		if strings.Contains(out, k) {
			fmt.Fprintf(os.Stderr, "FAIL: an API key appears in the captured log output:\n%s\n", out)
			code = 1
		}
	}
	// A run narrowed with -run or -fuzz may run no test that uploads; the whole run must have logged.
	if code == 0 && flagValue("test.run") == "" && flagValue("test.fuzz") == "" && !strings.Contains(out, "upload") {
		fmt.Fprintln(os.Stderr, "FAIL: the log capture caught nothing: the key check proves nothing")
		code = 1
	}
	// Every relay goroutine (workers, the outbox loop, HTTP connections) ends with its Run or client.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines left after the tests (goleak): %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

const testTimeout = 20 * time.Second

// env is a store, a fake NetworkSage over TLS, and a worker.
type env struct {
	t    *testing.T
	fake *sagefake.Fake
	srv  *httptest.Server
	// handler is what srv serves (the fake, unless a test wraps or replaces it).
	handler atomic.Value
	dsn     string
	st      store.Store
	reg     *prometheus.Registry
	w       *relay.Worker
	stop    func()
	log     *slog.Logger
}

func newEnv(t *testing.T, o sagefake.Options) *env {
	t.Helper()
	log := testLog(t)
	if o.Keys == nil {
		o.Keys = []string{testKey}
	}
	o.Log = log
	e := &env{t: t, fake: sagefake.New(o), dsn: filepath.Join(t.TempDir(), "flowfleet.db"), log: log}
	e.serve(e.fake)
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.handler.Load().(handlerBox).h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.open()
	return e
}

type handlerBox struct{ h http.Handler }

// serve makes the server serve h from the next request on.
func (e *env) serve(h http.Handler) { e.handler.Store(handlerBox{h}) }

func (e *env) open() {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { st.Close() })
}

// config is the worker configuration of the tests: short backoffs and scans, polling off.
func (e *env) config() relay.Config {
	return relay.Config{BaseURL: e.srv.URL, APIKey: testKey, HTTPClient: e.srv.Client(), Timeout: 5 * time.Second,
		ScanInterval: 10 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		PollInterval: -1, Owner: "test-collector"}
}

func (e *env) start(cfg relay.Config) {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	w, err := relay.NewWorker(e.st, cfg, e.log, e.reg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(e.stop)
}

// sampleContent is a small BayseFlow file, valid for the fake's secflow check.
func sampleContent(name string) []byte {
	return []byte(`{"hash": "5f0c6a8e2d3b4c1a9e8f7d6c5b4a3928", "trafficDate": "1700000100.5", "fileName": "` + name +
		`", "BayseFlows": [{"src": "10.0.0.5:40000", "dst": "example.com:443", "destinationNameSource": "passive", ` +
		`"srcPkts": 3, "srcBytes": 100, "dstPkts": 2, "dstBytes": 1000, "relativeStart": 0.5, ` +
		`"protocolInformation": "TCP", "identifier": "1", "duration": 1.0}]}`)
}

// addSample writes host's sample for window ws, queued for the relay; it returns its id and file name.
func (e *env) addSample(host string, ws int64) (string, string) {
	e.t.Helper()
	return e.addSampleWith(host, ws, 1, sampleContent)
}

// addSampleWith is addSample with content(file name) of flows flows.
func (e *env) addSampleWith(host string, ws int64, flows int, content func(name string) []byte) (string, string) {
	e.t.Helper()
	ctx := context.Background()
	b := store.Batch{Host: host, StreamID: "s", Seq: uint64(ws), Received: time.Now(), Parts: []store.BatchPart{{
		WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte("f")}}}
	if _, err := e.st.SaveBatches(ctx, []store.Batch{b}); err != nil {
		e.t.Fatal(err)
	}
	id := fmt.Sprintf("%s_%d", host, ws)
	name := id + ".bf"
	_, err := e.st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60},
		func(store.WindowContent) (store.NewSample, error) {
			c := content(name)
			return store.NewSample{ID: id, FileName: name, FlowCount: flows, Bytes: int64(len(c)), State: store.StateWritten,
				Content: c, Flows: []byte("f"), Relay: true}, nil
		})
	if err != nil {
		e.t.Fatal(err)
	}
	if e.w != nil {
		e.w.Notify()
	}
	return id, name
}

// waitState waits for the sample to reach state.
func (e *env) waitState(id string, state store.SampleState) *store.Sample {
	e.t.Helper()
	var s *store.Sample
	waitFor(e.t, "sample "+id+" in state "+string(state), func() bool {
		var err error
		s, err = e.st.GetSample(context.Background(), id)
		return err == nil && s.State == state
	})
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *env) counter(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
