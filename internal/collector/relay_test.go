package collector

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/internal/store"
)

const relayTestKey = "nsk_test_c0ffee00c0ffee00c0ffee00c0ffee00"

// startFake serves a fake NetworkSage over TLS and returns it with a relay configuration pointing at it
// (short backoffs and scans, polling off).
func startFake(t *testing.T) (*sagefake.Fake, relay.Config) {
	t.Helper()
	fake := sagefake.New(sagefake.Options{Keys: []string{relayTestKey}})
	srv := httptest.NewTLSServer(fake)
	t.Cleanup(srv.Close)
	return fake, relay.Config{BaseURL: srv.URL, APIKey: relayTestKey, HTTPClient: srv.Client(),
		ScanInterval: 20 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		PollInterval: -1, Timeout: 5 * time.Second}
}

// End to end: a sensor's window closes over mTLS, the sample is written, queued and uploaded, and it
// ends relayed with the fake's sampleId; the .bf that reached the fake is the sample's file.
func TestRelayEndToEnd(t *testing.T) {
	p := newTestPKI(t)
	fake, rcfg := startFake(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour, Relay: rcfg})
	admin := dialAs(t, tc.addr, p.Issue(t, auth.RoleAdmin, "root", pki.IssueOptions{}))
	reader := dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{}))

	events := watchEvents(t, tc, flowfleetv1.NewSampleServiceClient(reader))

	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})), "stream-1", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	s.send(1, testFlows(ws, 3, 0))
	s.ack()
	s.endWindow(ws, 60, 0)
	id, fileName := closer.SampleName("web01", ws, 1)
	var got *store.Sample
	waitFor(t, "the sample to be relayed", func() bool {
		got, _ = tc.st.GetSample(context.Background(), id)
		return got != nil && got.State == store.StateRelayed
	})
	ups := fake.Uploads()
	if len(ups) != 1 || got.RemoteID != ups[0].SampleID || ups[0].FileName != fileName || ups[0].PartName != fileName {
		t.Fatalf("sample %+v; fake uploads %d", got, len(ups))
	}
	file, err := os.ReadFile(filepath.Join(tc.c.SampleDir(), fileName))
	if err != nil || !bytes.Equal(file, ups[0].Content) {
		t.Fatalf("uploaded bytes differ from the sample file (%v)", err)
	}
	waitFor(t, "the relayed event", func() bool {
		got := events()
		return len(got) >= 2 && got[len(got)-1].GetSample().GetState() == flowfleetv1.SampleState_SAMPLE_STATE_RELAYED
	})

	// Re-queueing is for admins only.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = flowfleetv1.NewSampleServiceClient(reader).RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: id})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("reader RelaySample: %v, want PermissionDenied", err)
	}
	resp, err := flowfleetv1.NewSampleServiceClient(admin).RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.GetSample().GetState(); st != flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN || resp.GetSample().GetRemoteId() != "" {
		t.Fatalf("re-queued sample: %v", resp.GetSample())
	}
	waitFor(t, "the second upload", func() bool {
		got, _ = tc.st.GetSample(context.Background(), id)
		return got != nil && got.State == store.StateRelayed && len(fake.Uploads()) == 2
	})
	if got.RemoteID != fake.Uploads()[1].SampleID {
		t.Fatalf("remote id %q after the re-upload", got.RemoteID)
	}
	_, err = flowfleetv1.NewSampleServiceClient(admin).RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: "nope_1"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown sample: %v", err)
	}
	_, err = flowfleetv1.NewSampleServiceClient(admin).RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: "bad id!"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid id: %v", err)
	}
}

// With no key the relay is off: it says so once, samples stay written and are not queued, and
// RelaySample is refused.
func TestRelayOffWithoutKey(t *testing.T) {
	var logs bytes.Buffer
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(st, Config{DataDir: t.TempDir()}, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "relay off"); n != 1 {
		t.Fatalf("%d 'relay off' lines:\n%s", n, logs.String())
	}

	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	s.send(1, testFlows(ws, 1, 0))
	s.ack()
	s.endWindow(ws, 60, 0)
	id, _ := closer.SampleName("web01", ws, 1)
	waitFor(t, "the sample", func() bool { x, _ := tc.st.GetSample(context.Background(), id); return x != nil })
	if stats, _ := tc.st.OutboxStats(context.Background()); stats.Queued != 0 {
		t.Fatalf("queued with the relay off: %+v", stats)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admin := dialAs(t, tc.addr, p.Issue(t, auth.RoleAdmin, "root", pki.IssueOptions{}))
	_, err = flowfleetv1.NewSampleServiceClient(admin).RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: id})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RelaySample with the relay off: %v", err)
	}
}

// watchEvents subscribes to WatchSamples until the test ends and returns a function that gives the
// events received so far; it returns once the collector has the subscription.
func watchEvents(t *testing.T, tc *testCollector, client flowfleetv1.SampleServiceClient) func() []*flowfleetv1.SampleEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	watch, err := client.WatchSamples(ctx, &flowfleetv1.WatchSamplesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []*flowfleetv1.SampleEvent
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			resp, err := watch.Recv()
			if err != nil {
				return
			}
			if e := resp.GetEvent(); e != nil {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
		}
	}()
	waitFor(t, "the watch to subscribe", func() bool { // an event: a sleep could end before the subscription
		tc.c.events.mu.Lock()
		defer tc.c.events.mu.Unlock()
		return len(tc.c.events.subs) == 1
	})
	return func() []*flowfleetv1.SampleEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]*flowfleetv1.SampleEvent(nil), events...)
	}
}
