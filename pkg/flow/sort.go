package flow

import (
	"sort"

	"github.com/flowfleet/flowfleet/internal/pynum"
)

func sortStable[T any](s []T, less func(x, y T) bool) {
	sort.SliceStable(s, func(i, j int) bool { return less(s[i], s[j]) })
}

func pyFix6(x float64) float64 { return pynum.Fix6(x) }
