package collector

import (
	"math"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowpb"
)

// fastValidator is the protovalidate validator with a shortcut for flow batches. Evaluating the
// proto's rules on every flow (CEL programs, an IP parser and two regular expressions per flow) cost
// about 13 µs a flow, half the collector's CPU at 200,000 flows/s. okBatch checks the same rules in
// plain Go but only ever says "valid" for a batch the rules accept (a conservative subset: canonical
// IP strings, ASCII ports); anything it does not accept goes to protovalidate, which gives the
// authoritative answer and the usual error naming the field. validate_test.go checks the subset
// against protovalidate.
type fastValidator struct {
	protovalidate.Validator
}

func (v fastValidator) Validate(msg proto.Message, options ...protovalidate.ValidationOption) error {
	if len(options) == 0 {
		if m, ok := msg.(*flowfleetv1.IngestRequest); ok {
			if b := m.GetBatch(); b != nil && okBatch(b) {
				return nil
			}
		}
	}
	return v.Validator.Validate(msg, options...)
}

// okBatch reports a batch that certainly satisfies the rules of FlowBatch and Flow.
func okBatch(b *flowfleetv1.FlowBatch) bool {
	if b.GetSeq() < 1 || b.GetSeq() > math.MaxInt64 || len(b.GetFlows()) > flowpb.MaxBatchFlows {
		return false
	}
	for _, f := range b.GetFlows() {
		if !okFlow(f) {
			return false
		}
	}
	return true
}

// okFlow is flowpb.Check, the same direct rendering of the Flow rules the sensor vets its flows with.
func okFlow(f *flowfleetv1.Flow) bool { return flowpb.Check(f) == nil }
