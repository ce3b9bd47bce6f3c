package sink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/backoff"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

var fastRetry = backoff.Policy{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// backends runs fn on SQLite and on PostgreSQL (storetest says why when PostgreSQL is missing).
func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	open := func(t *testing.T, dsn string) store.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, filepath.Join(t.TempDir(), "flowfleet.db"))) })
	t.Run("postgres", func(t *testing.T) { fn(t, open(t, storetest.PostgresDSN(t))) })
}

func openSQLite(t *testing.T) store.Store {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "flowfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

const ws0 = int64(1_700_000_040)

// testFlows are n distinct flows of host's window ws.
func testFlows(host string, ws int64, n int) []*flowfleetv1.Flow {
	out := make([]*flowfleetv1.Flow, n)
	for i := range n {
		first := float64(ws) + float64(i)*0.001
		out[i] = &flowfleetv1.Flow{SrcAddr: "10.0.0." + strconv.Itoa(1+i%200), SrcPort: strconv.Itoa(1024 + i),
			DstAddr: "192.0.2." + strconv.Itoa(i%250), DstPort: "443", DstName: fmt.Sprintf("%s-%d.example.com", host, i),
			NameSource: flowfleetv1.NameSource_NAME_SOURCE_PASSIVE, Protocol: flowfleetv1.Protocol_PROTOCOL_TCP,
			SrcPkts: int64(i + 1), SrcBytes: int64(100 * (i + 1)), DstPkts: int64(i + 2), DstBytes: int64(200 * (i + 2)),
			FirstSeen: first, LastSeen: first + 0.5, WindowStart: ws}
	}
	return out
}

func testSample(n int) *store.Sample {
	return &store.Sample{ID: "h_" + strconv.FormatInt(ws0, 10), Host: "h", WindowStart: ws0, Revision: 1, FlowCount: n}
}

// cutAll cuts flows into messages as the worker does.
func cutAll(t *testing.T, x *store.Sample, flows []*flowfleetv1.Flow) []Message {
	t.Helper()
	b, err := newBatcher(x)
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	for i := 0; i < len(flows); i += store.FlowChunkFlows {
		ms, err := b.add(flows[i:min(i+store.FlowChunkFlows, len(flows))])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms...)
	}
	last, err := b.finish()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, last...)
}

// addSample records host's window ws with n flows, queued for the sink as the closer queues it.
func addSample(t *testing.T, st store.Store, host string, ws int64, n int) (*store.Sample, []*flowfleetv1.Flow) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flows := testFlows(host, ws, n)
	b := store.Batch{Host: host, StreamID: "s", Seq: uint64(ws), Received: time.Now(), Parts: []store.BatchPart{{
		WindowStart: ws, WindowSeconds: 60, FlowCount: n, Flows: []byte("unused")}}}
	if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
	var chunks [][]byte
	for i := 0; i < n; i += store.FlowChunkFlows {
		enc, err := flowpb.Encode(flows[i:min(i+store.FlowChunkFlows, n)])
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, enc)
	}
	x, err := st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60},
		func(c store.WindowContent) (store.NewSample, error) {
			id := fmt.Sprintf("%s_%d", c.Host, c.WindowStart)
			return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: n, State: store.StateClosed,
				Content: []byte("bf"), FlowChunks: chunks, Sink: true}, nil
		})
	if err != nil || x == nil {
		t.Fatalf("close window: %v %v", x, err)
	}
	return x, flows
}

// runWorker runs a worker until the test ends.
func runWorker(t *testing.T, st store.Store, cfg Config) *Worker {
	t.Helper()
	pub, err := Dial(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(st, pub, cfg, nil, nil)
	if err != nil {
		pub.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return w
}

func queued(t *testing.T, st store.Store) int {
	t.Helper()
	s, err := st.SinkStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Queued
}

// received reads every message on the bus (a reader independent of the publisher).
func received(t *testing.T, b *busServer, cfg Config) []Message {
	t.Helper()
	cfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tc *tls.Config
	if b.TLS != nil {
		c, err := clientTLS(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		tc = c
	}
	if b.Kind == "redis" {
		opts, err := redis.ParseURL(cfg.URL)
		if err != nil {
			t.Fatal(err)
		}
		opts.TLSConfig = tc
		c := redis.NewClient(opts)
		defer c.Close()
		entries, err := c.XRange(ctx, cfg.Stream, "-", "+").Result()
		if err != nil {
			t.Logf("xrange: %v", err)
			return nil
		}
		var out []Message
		for _, e := range entries {
			v := func(k string) string { s, _ := e.Values[k].(string); return s }
			n := func(k string) int { i, _ := strconv.Atoi(v(k)); return i }
			ws, _ := strconv.ParseInt(v("window_start"), 10, 64)
			out = append(out, Message{ID: v("id"), SampleID: v("sample"), Host: v("host"), WindowStart: ws,
				Revision: n("revision"), Batch: n("batch"), Flows: n("flows"), SampleFlows: n("sample_flows"), Data: []byte(v("data"))})
		}
		return out
	}
	opts := []nats.Option{}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		t.Logf("nats connect: %v", err)
		return nil
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil
	}
	var out []Message
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		h := m.Header
		n := func(k string) int { i, _ := strconv.Atoi(h.Get(k)); return i }
		ws, _ := strconv.ParseInt(h.Get("Flowfleet-Window-Start"), 10, 64)
		out = append(out, Message{ID: h.Get(jetstream.MsgIDHeader), SampleID: h.Get("Flowfleet-Sample"), Host: h.Get("Flowfleet-Host"),
			WindowStart: ws, Revision: n("Flowfleet-Revision"), Batch: n("Flowfleet-Batch"), Flows: n("Flowfleet-Flows"),
			SampleFlows: n("Flowfleet-Sample-Flows"), Data: m.Data})
	}
	return out
}

// complete says whether msgs hold every batch of every sample in want (duplicates allowed).
func complete(msgs []Message, want map[string][]*flowfleetv1.Flow) bool {
	got := map[string]int{}
	seen := map[string]bool{}
	for _, m := range msgs {
		if !seen[m.ID] {
			seen[m.ID] = true
			got[m.SampleID] += m.Flows
		}
	}
	for id, flows := range want {
		if got[id] != len(flows) {
			return false
		}
	}
	return true
}

// checkFlows checks that msgs (deduplicated by id) carry exactly the flows of want, sample by sample in
// flow order, with the documented message fields and bounds.
func checkFlows(t *testing.T, msgs []Message, want map[string][]*flowfleetv1.Flow, samples map[string]*store.Sample) {
	t.Helper()
	byID := map[string]Message{}
	for _, m := range msgs {
		if prev, ok := byID[m.ID]; ok && string(prev.Data) != string(m.Data) {
			t.Fatalf("message %s sent twice with different content", m.ID)
		}
		byID[m.ID] = m
	}
	perSample := map[string][]Message{}
	for _, m := range byID {
		perSample[m.SampleID] = append(perSample[m.SampleID], m)
	}
	if len(perSample) != len(want) {
		t.Fatalf("messages of %d samples, want %d", len(perSample), len(want))
	}
	for id, flows := range want {
		x := samples[id]
		ms := perSample[id]
		sort.Slice(ms, func(i, j int) bool { return ms[i].Batch < ms[j].Batch })
		var lines []string
		for i, m := range ms {
			if m.Batch != i || m.ID != fmt.Sprintf("%s/%d/%d", id, x.Revision, i) || m.Host != x.Host ||
				m.WindowStart != x.WindowStart || m.Revision != x.Revision || m.SampleFlows != len(flows) {
				t.Fatalf("message %d of %s: %+v", i, id, m)
			}
			if m.Flows > MaxMessageFlows || len(m.Data) > MaxMessageBytes {
				t.Fatalf("message %s over its bounds: %d flows, %d bytes", m.ID, m.Flows, len(m.Data))
			}
			ls := strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n")
			if len(ls) != m.Flows {
				t.Fatalf("message %s: %d lines, says %d flows", m.ID, len(ls), m.Flows)
			}
			lines = append(lines, ls...)
		}
		if len(lines) != len(flows) {
			t.Fatalf("sample %s: %d flows on the bus, want %d", id, len(lines), len(flows))
		}
		for i, line := range lines {
			checkRecord(t, line, x, flows[i])
		}
	}
}

// checkRecord compares one JSON line with the flow it must describe (docs/dataset.md's columns).
func checkRecord(t *testing.T, line string, x *store.Sample, f *flowfleetv1.Flow) {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("not JSON: %q: %v", line, err)
	}
	num := func(s string) float64 { n, _ := strconv.ParseFloat(s, 64); return n }
	want := map[string]any{"host": x.Host, "sample_id": x.ID, "src_ip": f.SrcAddr, "src_port": num(f.SrcPort),
		"dst_ip": f.DstAddr, "dst_port": num(f.DstPort), "dst_name": f.DstName, "name_source": "passive", "protocol": "tcp",
		"src_packets": float64(f.SrcPkts), "src_bytes": float64(f.SrcBytes), "dst_packets": float64(f.DstPkts),
		"dst_bytes": float64(f.DstBytes), "duration_seconds": 0.5}
	for k, v := range want {
		if r[k] != v {
			t.Fatalf("%s = %#v, want %#v in %s", k, r[k], v, line)
		}
	}
	ws, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["window_start"]))
	if err != nil || ws.Unix() != x.WindowStart {
		t.Fatalf("window_start %v (%v), want %d", r["window_start"], err, x.WindowStart)
	}
	st, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["start_time"]))
	if err != nil || !st.Equal(time.UnixMicro(int64(f.FirstSeen*1e6+0.5))) {
		t.Fatalf("start_time %v (%v), want %v", r["start_time"], err, f.FirstSeen)
	}
}

// TestEveryFlowArrives: every flow of every sample reaches the bus, exactly as recorded, and the
// samples leave the queue; on both buses and both store backends.
func TestEveryFlowArrives(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			b := startBus(t, kind, nil)
			backends(t, func(t *testing.T, st store.Store) {
				cfg := busConfig(t, b)
				cfg.Stream = "s-" + strings.ReplaceAll(t.Name(), "/", "-")
				cfg.Subject = "flows." + strconv.FormatInt(time.Now().UnixNano(), 10)
				cfg.MaxInFlight = 2 // a sample of 3 messages takes two groups
				want := map[string][]*flowfleetv1.Flow{}
				samples := map[string]*store.Sample{}
				for i, n := range []int{1, 2500, 0, 999} {
					x, flows := addSample(t, st, fmt.Sprintf("host%d", i), ws0+int64(i)*60, n)
					want[x.ID], samples[x.ID] = flows, x
				}
				runWorker(t, st, cfg)
				waitFor(t, "the queue to empty", func() bool { return queued(t, st) == 0 })
				delete(want, "host2_"+strconv.FormatInt(ws0+120, 10)) // no flows, no message
				checkFlows(t, received(t, b, cfg), want, samples)
			})
		})
	}
}

// TestBusKilledMidStream: the bus is killed with SIGKILL while samples are being published and started
// again; nothing is lost, the worker catches up, and no sample leaves the queue while the bus is down.
func TestBusKilledMidStream(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			b := startBus(t, kind, nil)
			st := openSQLite(t)
			cfg := busConfig(t, b)
			want := map[string][]*flowfleetv1.Flow{}
			samples := map[string]*store.Sample{}
			add := func(i int) {
				x, flows := addSample(t, st, fmt.Sprintf("h%02d", i), ws0, 1500)
				want[x.ID], samples[x.ID] = flows, x
			}
			for i := range 10 {
				add(i)
			}
			w := runWorker(t, st, cfg)
			waitFor(t, "the first sample on the bus", func() bool { return testutil.ToFloat64(w.metrics.samples) >= 1 })
			b.Kill()
			for i := 10; i < 20; i++ {
				add(i)
				w.Notify()
			}
			waitFor(t, "a failure while the bus is down", func() bool {
				return testutil.ToFloat64(w.metrics.failures.WithLabelValues(reasonUnavailable))+
					testutil.ToFloat64(w.metrics.failures.WithLabelValues(reasonTimeout)) >= 1
			})
			if n := queued(t, st); n < 10 {
				t.Fatalf("%d samples queued while the bus is down, want at least the 10 added since", n)
			}
			b.Start()
			waitFor(t, "the queue to empty", func() bool { return queued(t, st) == 0 })
			var msgs []Message
			waitFor(t, "every flow on the bus", func() bool {
				msgs = received(t, b, cfg)
				return complete(msgs, want)
			})
			checkFlows(t, msgs, want, samples)
		})
	}
}

// TestNotMarkedBeforeAck: a bus that accepts connections and reads commands but never answers: the
// sample stays queued (the acknowledgement is what removes it), and the failure is counted as a timeout.
func TestNotMarkedBeforeAck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 { // a command (the client's HELLO first): it waits for a reply that never comes
						select {
						case got <- struct{}{}:
						default:
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	st := openSQLite(t)
	x, _ := addSample(t, st, "h", ws0, 10)
	cfg := Config{URL: "redis://" + l.Addr().String(), Owner: "test", Retry: fastRetry, AckTimeout: 200 * time.Millisecond,
		ScanInterval: 50 * time.Millisecond}
	w := runWorker(t, st, cfg)
	<-got
	waitFor(t, "an acknowledgement timeout", func() bool {
		return testutil.ToFloat64(w.metrics.failures.WithLabelValues(reasonTimeout)) >= 2
	})
	if n := queued(t, st); n != 1 {
		t.Fatalf("%d samples queued, want %s still queued", n, x.ID)
	}
	if n := testutil.ToFloat64(w.metrics.samples); n != 0 {
		t.Fatalf("%v samples counted published without an acknowledgement", n)
	}
	l.Close()
	<-done
}

// TestMutualTLS: both buses over mutual TLS with a client certificate; a client certificate from
// another CA publishes nothing.
func TestMutualTLS(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			p := pkitest.New(t)
			b := startBus(t, kind, p)
			st := openSQLite(t)
			x, flows := addSample(t, st, "h", ws0, 1200)
			cfg := busConfig(t, b)

			// A stranger's certificate first: the bus refuses it and the sample stays queued.
			other := pkitest.New(t)
			bad := cfg
			f := other.Issue(t, auth.RoleCollector, "stranger", pki.IssueOptions{})
			bad.CertFile, bad.KeyFile = f.CertFile, f.KeyFile
			bad.AckTimeout = time.Second
			func() {
				pub, err := Dial(bad, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer pub.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				if err := pub.Publish(ctx, []Message{{ID: "x/1/0", Data: []byte("{}\n"), Flows: 1}}); err == nil {
					t.Fatal("a client certificate from another CA could publish")
				}
				if queued(t, st) != 1 {
					t.Fatal("sample left the queue")
				}
			}()

			runWorker(t, st, cfg)
			waitFor(t, "the queue to empty", func() bool { return queued(t, st) == 0 })
			checkFlows(t, received(t, b, cfg), map[string][]*flowfleetv1.Flow{x.ID: flows}, map[string]*store.Sample{x.ID: x})
		})
	}
}
