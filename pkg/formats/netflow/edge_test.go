package netflow

import (
	"math"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// R-NF-9: "Group order, except that a flow flipped in R-NF-8 is moved to the end of the creation order at
// the moment it is flipped". Group A (8.8.4.4:53 -> 10.0.0.1:50001) is built and flipped before group B
// exists, so at equal relativeStart A must still come first.

// R-FLOW-3/R-NF-8: last = max(last, start + dec(duration)); duration = fix6(last - first). A duration of
// "inf" parses (Python float) and gives an infinite duration; nothing in docs/bayseflow.md aborts the conversion.
func TestRNF8InfiniteDuration(t *testing.T) {
	s, err := Read(strings.NewReader(hdr+"2022-06-02 17:21:39,x,inf,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"),
		"test.netflow", Options{Location: newYork(t)})
	if err != nil {
		t.Fatalf("Read: %v (spec: no abort)", err)
	}
	flow.Finalize(&s, false)
	if len(s.Flows) != 1 || !math.IsInf(s.Flows[0].Duration, 1) {
		t.Errorf("flows %+v, want one flow with duration +Inf", s.Flows)
	}
}
