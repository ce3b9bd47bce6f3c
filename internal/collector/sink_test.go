package collector

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/sink"
	"github.com/flowfleet/flowfleet/internal/sink/bustest"
)

// End to end over mutual TLS on both legs: a sensor's flows ingested over mTLS gRPC reach a real
// nats-server's JetStream over mTLS (the collector's own certificate as the client's), as JSON lines of
// the dataset schema, and the sample leaves the sink queue.
func TestSinkEndToEnd(t *testing.T) {
	p := newTestPKI(t)
	bus := bustest.Start(t, "nats", p)
	files := p.Files(auth.RoleCollector, "collector")
	cfg := sink.Config{URL: bus.URL(), Stream: "fleet", Subject: "fleet.flows", CertFile: files.CertFile,
		KeyFile: files.KeyFile, CAFile: files.CAFile, ScanInterval: 50 * time.Millisecond}
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour, Sink: cfg})

	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})), "stream-1", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	sent := testFlows(ws, 1500, 0)
	s.send(1, sent[:700])
	s.ack()
	s.send(2, sent[700:])
	s.ack()
	s.endWindow(ws, 60, 0)
	id, _ := closer.SampleName("web01", ws, 1)
	waitFor(t, "the sample to leave the sink queue", func() bool {
		x, err := tc.st.GetSample(context.Background(), id)
		st, _ := tc.st.SinkStats(context.Background())
		return err == nil && x != nil && st.Queued == 0
	})

	tlsCfg, err := auth.ClientTLSConfig(files, "localhost", nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.NextProtos = nil
	nc, err := nats.Connect(bus.URL(), nats.Secure(tlsCfg))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	stream, err := js.Stream(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 { // 1,500 flows: 1,000 + 500
		t.Fatalf("%d messages on the stream, want 2", info.State.Msgs)
	}
	var got []map[string]any
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if want := id + "/1/" + itoa(int(seq-info.State.FirstSeq)); m.Header.Get(jetstream.MsgIDHeader) != want {
			t.Fatalf("message id %q, want %q", m.Header.Get(jetstream.MsgIDHeader), want)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("not a JSON line: %q", line)
			}
			got = append(got, r)
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("%d flows on the bus, %d sent", len(got), len(sent))
	}
	for i, f := range sent {
		r := got[i]
		if r["host"] != "web01" || r["sample_id"] != id || r["src_port"] != float64(40000+i) ||
			r["src_bytes"] != float64(f.GetSrcBytes()) || r["dst_name"] != f.GetDstName() || r["protocol"] != "tcp" {
			t.Fatalf("flow %d on the bus: %v, sent %v", i, r, f)
		}
	}
}
