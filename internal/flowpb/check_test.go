package flowpb

import (
	"math"
	"math/rand/v2"
	"testing"

	validate "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Check never accepts a flow protovalidate refuses, and accepts every flow the engine makes.
func TestCheckAgreesWithProtovalidate(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	base := ToProto(&flow.Flow{SrcAddr: "10.0.0.1", SrcPort: "40000", DstAddr: "2001:db8::1", DstPort: "443",
		Protocol: flow.ProtoTCP, SrcPkts: 1, First: 100, Last: 101, Name: "example.com", NameSource: flow.SourcePassive}, 60)
	mutations := []func(*flowfleetv1.Flow, *rand.Rand){
		func(f *flowfleetv1.Flow, r *rand.Rand) {
			f.SrcAddr = []string{"", "1.2.3.4", "::1", "fe80::1%eth0", "1.2.3", "300.1.1.1", "::ffff:1.2.3.4", "x"}[r.IntN(8)]
		},
		func(f *flowfleetv1.Flow, r *rand.Rand) {
			f.DstPort = []string{"", "0", "65535", "99999", "123456", "12a", " 1", "-1"}[r.IntN(8)]
		},
		func(f *flowfleetv1.Flow, r *rand.Rand) {
			f.DstName = []string{"", "a", string(make([]byte, 1024)), string(make([]byte, 1025)), "é"}[r.IntN(5)]
		},
		func(f *flowfleetv1.Flow, r *rand.Rand) { f.NameSource = flowfleetv1.NameSource(r.IntN(7) - 1) },
		func(f *flowfleetv1.Flow, r *rand.Rand) { f.Protocol = flowfleetv1.Protocol(r.IntN(7) - 1) },
		func(f *flowfleetv1.Flow, r *rand.Rand) { f.SrcPkts = int64(r.IntN(3) - 1) },
		func(f *flowfleetv1.Flow, r *rand.Rand) {
			f.FirstSeen = []float64{0, -1, 50, 200, math.NaN(), math.Inf(1)}[r.IntN(6)]
		},
		func(f *flowfleetv1.Flow, r *rand.Rand) {
			f.LastSeen = []float64{0, 99, 100, 101, math.Inf(1)}[r.IntN(5)]
		},
		func(f *flowfleetv1.Flow, r *rand.Rand) { f.WindowStart = int64(r.IntN(3) - 1) },
		func(f *flowfleetv1.Flow, r *rand.Rand) {
			f.Protocol = flowfleetv1.Protocol_PROTOCOL_ICMP
			if r.IntN(2) == 0 {
				f.SrcPort, f.DstPort = "", ""
			}
		},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := 0; i < 20000; i++ {
		f := proto.Clone(base).(*flowfleetv1.Flow)
		for j := 0; j < 1+rng.IntN(3); j++ {
			mutations[rng.IntN(len(mutations))](f, rng)
		}
		mine, theirs := Check(f), v.Validate(f)
		if mine == nil && theirs != nil {
			t.Fatalf("Check accepts a flow protovalidate refuses (%v): %v", theirs, f)
		}
		if mine == nil {
			accepted++
		}
	}
	if accepted == 0 {
		t.Fatal("no mutated flow was valid: the test checks nothing")
	}
	if err := Check(base); err != nil {
		t.Fatalf("an engine flow is refused: %v", err)
	}
}

func BenchmarkCheck(b *testing.B) {
	f := ToProto(&flow.Flow{SrcAddr: "10.0.0.1", SrcPort: "40000", DstAddr: "93.184.216.34", DstPort: "443",
		Protocol: flow.ProtoTCP, First: 100, Last: 101, Name: "example.com", NameSource: flow.SourcePassive}, 60)
	v, _ := protovalidate.New()
	b.Run("flowpb", func(b *testing.B) {
		for b.Loop() {
			_ = Check(f)
		}
	})
	b.Run("protovalidate", func(b *testing.B) {
		for b.Loop() {
			_ = v.Validate(f)
		}
	})
}

// Ports are 0–65535 both for Check and for the proto's rules (issue 14, item 10: port 99999 was
// accepted and written as 10.0.0.1:99999).
func TestPortRange(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	base := ToProto(&flow.Flow{SrcAddr: "10.0.0.1", SrcPort: "40000", DstAddr: "10.0.0.2", DstPort: "443",
		Protocol: flow.ProtoTCP, SrcPkts: 1, First: 100, Last: 101, Name: "example.com", NameSource: flow.SourcePassive}, 60)
	for port, ok := range map[string]bool{"": true, "0": true, "1": true, "65535": true, "00080": true, "65536": false,
		"99999": false, "70000": false, "123456": false} {
		for _, side := range []string{"src", "dst"} {
			f := proto.Clone(base).(*flowfleetv1.Flow)
			if side == "src" {
				f.SrcPort = port
			} else {
				f.DstPort = port
			}
			mine, theirs := Check(f), v.Validate(f)
			if (mine == nil) != ok || (theirs == nil) != ok {
				t.Errorf("%s_port %q: Check %v, protovalidate %v; want accepted = %v", side, port, mine, theirs, ok)
			}
		}
	}
}

// MaxBatchFlows is the proto's max_items rule on FlowBatch.flows.
func TestMaxBatchFlowsIsTheProtoRule(t *testing.T) {
	fd := (&flowfleetv1.FlowBatch{}).ProtoReflect().Descriptor().Fields().ByName("flows")
	rules, ok := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	if !ok || rules.GetRepeated() == nil {
		t.Fatal("FlowBatch.flows has no repeated rules")
	}
	if got := rules.GetRepeated().GetMaxItems(); got != MaxBatchFlows {
		t.Fatalf("proto max_items %d, MaxBatchFlows %d", got, MaxBatchFlows)
	}
}
