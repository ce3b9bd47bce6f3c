package flow

import (
	"slices"

	"github.com/flowfleet/flowfleet/pkg/internal/pynum"
)

// sortStable sorts s stably by less. Input already in order (flows are mostly created in the order
// sorted for) costs one pass.
func sortStable[T any](s []T, less func(x, y T) bool) {
	cmp := func(x, y T) int {
		switch {
		case less(x, y):
			return -1
		case less(y, x):
			return 1
		}
		return 0
	}
	if slices.IsSortedFunc(s, cmp) {
		return
	}
	slices.SortStableFunc(s, cmp)
}

func pyFix6(x float64) float64 { return pynum.Fix6(x) }

// sortFlows sorts flows stably by RelativeStart (R-ORD-1). Flow records are large, so it sorts an index
// and moves each record once.
func sortFlows(flows []Flow) {
	sorted := true
	for i := 1; i < len(flows); i++ {
		if flows[i].RelativeStart < flows[i-1].RelativeStart {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	idx := make([]int32, len(flows))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int {
		x, y := flows[a].RelativeStart, flows[b].RelativeStart
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	out := make([]Flow, len(flows))
	for i, j := range idx {
		out[i] = flows[j]
	}
	copy(flows, out)
}
