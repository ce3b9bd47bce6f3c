package loadgen

import (
	"math/rand/v2"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// The generated flows satisfy the API's rules, and the pre-encoded batch is the IngestRequest the
// collector expects. The log gives the sizes the benchmark figures are made of.
func TestFlowsAndEncoding(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ws := int64(1_700_000_000)
	flows := Flows(rng, 42, 2000, ws, float64(ws), float64(ws)+10)
	batch := &flowfleetv1.FlowBatch{Seq: 7, Flows: flows[:500]}
	if err := v.Validate(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: batch}}); err != nil {
		t.Fatal(err)
	}
	field, err := proto.Marshal(&flowfleetv1.FlowBatch{Flows: flows[:500]})
	if err != nil {
		t.Fatal(err)
	}
	var got flowfleetv1.IngestRequest
	if err := proto.Unmarshal(encodeBatch(nil, 7, field), &got); err != nil || !proto.Equal(got.GetBatch(), batch) {
		t.Fatalf("pre-encoded batch decodes to %v (%v)", got.GetBatch().GetSeq(), err)
	}
	s := closer.BuildSample(flows, 0)
	bf := bayseflow.Encode(s, "h_1700000000.bf", "")
	all, _ := proto.Marshal(&flowfleetv1.FlowBatch{Flows: flows})
	t.Logf("per flow: %d bytes on the wire (protobuf), %d bytes of BayseFlow", len(all)/len(flows), len(bf)/len(flows))
}
