package collector

import (
	"log/slog"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// FuzzIngestMessage feeds random protobuf bytes through what the collector does with an ingest message:
// decoding, the validation the interceptor applies, splitting a batch by window, storing its parts'
// encoding and building the sample and its BayseFlow file. Whatever passes validation must go through
// without a panic, and the sample must hold exactly the batch's flows.
func FuzzIngestMessage(f *testing.F) {
	ws := int64(1_700_000_040)
	seed := func(m *flowfleetv1.IngestRequest) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: 1, Flows: testFlows(ws, 3, 0)}}})
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{StreamId: "s", SoftwareVersion: "v", WindowSeconds: 60}}})
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{WindowStart: ws, WindowSeconds: 60, FirstFrameTime: float64(ws)}}})
	icmp := testFlows(ws+60, 1, 0)
	icmp[0].Protocol, icmp[0].SrcPort, icmp[0].DstPort = flowfleetv1.Protocol_PROTOCOL_ICMP, "", ""
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: 7, Flows: append(testFlows(ws, 2, 5), icmp...)}}})
	validator, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	c, err := New(nil, Config{DataDir: f.TempDir(), Window: 60 * time.Second}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		began := time.Now()
		var m flowfleetv1.IngestRequest
		if proto.Unmarshal(data, &m) != nil || validator.Validate(&m) != nil {
			return
		}
		b := m.GetBatch()
		if b == nil {
			return
		}
		req, err := c.newCommit("host", "stream", b)
		if err != nil {
			t.Fatalf("a valid batch does not encode: %v", err)
		}
		total := 0
		for _, p := range req.batch.Parts {
			flows, err := flowpb.Decode(p.Flows)
			if err != nil {
				t.Fatalf("a part the collector encoded does not decode: %v", err)
			}
			if len(flows) != p.FlowCount || p.WindowStart%60 != 0 {
				t.Fatalf("part of window %d: %d flows, count says %d", p.WindowStart, len(flows), p.FlowCount)
			}
			s := BuildSample(flows, 0)
			if len(s.Flows) != len(flows) {
				t.Fatalf("sample has %d flows, the part %d", len(s.Flows), len(flows))
			}
			id, name := SampleName("host", p.WindowStart, 1)
			if _, err := bayseflow.Decode(bayseflow.Encode(s, name, "")); err != nil {
				t.Fatalf("sample %s: the BayseFlow file does not decode: %v", id, err)
			}
			total += len(flows)
		}
		if total != len(b.GetFlows()) {
			t.Fatalf("%d flows in the parts, %d in the batch", total, len(b.GetFlows()))
		}
		if d := time.Since(began); d > time.Second {
			t.Fatalf("one message took %s", d)
		}
	})
}
