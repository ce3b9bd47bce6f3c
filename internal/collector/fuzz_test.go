package collector

import (
	"log/slog"
	"math"
	"strconv"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// The fuzz target's fixed clock and skew window.
var (
	fuzzNow   = time.Unix(1_700_000_100, 0)
	fuzzAge   = 30 * 24 * time.Hour
	fuzzAhead = time.Hour
)

// FuzzIngestMessage feeds random protobuf bytes through what the collector does with an ingest message:
// decoding, the validation the interceptor applies, splitting a batch by window, storing its parts'
// encoding and building the sample and its BayseFlow file. Whatever passes validation must go through
// without a panic, and the sample must hold exactly the batch's flows. At the limits: the fast path never
// accepts what the rules refuse, and what passes validation and the skew window stays within the
// documented bounds (seq below 2^63, ports up to 65535, windows inside the skew window, drop counters
// within what the store keeps).
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
	// At the limits (issue 14): the largest seq and the first refused, the highest port and the first
	// refused, drop counters near 2^64, times at the skew window's edges and far beyond.
	edge := testFlows(ws, 2, 0)
	edge[0].SrcPort, edge[1].DstPort = "65535", "65536"
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: math.MaxInt64, Flows: edge[:1],
		Drops: &flowfleetv1.DropCounters{KernelPackets: math.MaxUint64, SensorPackets: math.MaxUint64, SensorFlows: 1 << 63}}}})
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: 1 << 63, Flows: edge}}})
	far := testFlows(ws, 3, 0)
	far[0].FirstSeen, far[0].LastSeen, far[0].WindowStart = 1e19, 1e19, 0
	far[1].FirstSeen, far[1].LastSeen = float64(fuzzNow.Add(-fuzzAge).Unix()), float64(fuzzNow.Add(fuzzAhead).Unix())
	far[2].WindowStart = math.MaxInt64 / 60 * 60
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: 2, Flows: far}}})
	seed(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{
		WindowStart: math.MaxInt64 / 60 * 60, WindowSeconds: 60, FirstFrameTime: 1e300}}})
	validator, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	c, err := New(nil, Config{DataDir: f.TempDir(), Window: 60 * time.Second, Limits: Limits{MaxFlowAge: fuzzAge, MaxFlowAhead: fuzzAhead}},
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		f.Fatal(err)
	}
	tb := c.timeBounds(fuzzNow)
	f.Fuzz(func(t *testing.T, data []byte) {
		began := time.Now()
		var m flowfleetv1.IngestRequest
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		if b := m.GetBatch(); b != nil && okBatch(b) && validator.Validate(&m) != nil {
			t.Fatalf("the fast path accepts a batch the rules refuse: %v", validator.Validate(&m))
		}
		if validator.Validate(&m) != nil {
			return
		}
		if we := m.GetWindowEnd(); we != nil && c.checkWindowEndTimes(we, fuzzNow) == nil {
			if s := float64(we.GetWindowStart()); s < tb.lo-60 || s > tb.hi {
				t.Fatalf("window end %d accepted outside the skew window", we.GetWindowStart())
			}
		}
		b := m.GetBatch()
		if b == nil {
			return
		}
		// What validation lets through is within the documented bounds.
		if b.GetSeq() < 1 || b.GetSeq() > math.MaxInt64 {
			t.Fatalf("seq %d passed validation", b.GetSeq())
		}
		for _, fl := range b.GetFlows() {
			for _, port := range []string{fl.GetSrcPort(), fl.GetDstPort()} {
				if v, err := strconv.Atoi(port); port != "" && (err != nil || v < 0 || v > 65535) {
					t.Fatalf("port %q passed validation", port)
				}
			}
		}
		timesOK := c.checkBatchTimes(b, fuzzNow) == nil
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
			if ws := float64(p.WindowStart); timesOK && (ws < tb.lo-60 || ws > tb.hi) {
				t.Fatalf("times accepted, yet a part lands in window %d, outside %v", p.WindowStart, tb)
			}
			s := closer.BuildSample(flows, 0)
			if len(s.Flows) != len(flows) {
				t.Fatalf("sample has %d flows, the part %d", len(s.Flows), len(flows))
			}
			id, name := closer.SampleName("host", p.WindowStart, 1)
			if _, err := bayseflow.Decode(bayseflow.Encode(s, name, "")); err != nil {
				t.Fatalf("sample %s: the BayseFlow file does not decode: %v", id, err)
			}
			total += len(flows)
		}
		if req.batch.Drops > math.MaxInt64 || req.batch.FlowDrops > math.MaxInt64 {
			t.Fatalf("drops %d/%d beyond what the store keeps", req.batch.Drops, req.batch.FlowDrops)
		}
		if total != len(b.GetFlows()) {
			t.Fatalf("%d flows in the parts, %d in the batch", total, len(b.GetFlows()))
		}
		if d := time.Since(began); d > time.Second {
			t.Fatalf("one message took %s", d)
		}
	})
}
