// Package promtest checks a component's Prometheus registry in tests: the metrics pass promlint (the
// Prometheus naming and help conventions) and are exactly the names the component exports.
package promtest

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Lint fails t for every promlint problem of g's metrics, and unless g gathers exactly want (sorted,
// as Gather returns them). A vector without children is not gathered, so the caller makes one child of
// each before; want then also proves that every metric was linted.
func Lint(t testing.TB, g prometheus.Gatherer, want []string) {
	t.Helper()
	problems, err := testutil.GatherAndLint(g)
	if err != nil {
		t.Fatalf("gathering the metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering the metrics: %v", err)
	}
	got := make([]string, 0, len(mfs))
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if !slices.Equal(got, want) {
		t.Errorf("metric names changed, or a metric was not gathered (so not linted):\n got %v\nwant %v", got, want)
	}
}
