package promtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder collects the failures Lint reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Errorf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }
func (r *recorder) Fatalf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }

func TestLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_test_things_total", Help: "Things."}))
	r := &recorder{TB: t}
	Lint(r, reg, []string{"flowfleet_test_things_total"})
	if len(r.errs) != 0 {
		t.Fatalf("a clean registry failed: %v", r.errs)
	}

	// A counter without _total and a wrong name list both fail.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "flowfleet_test_things", Help: "Things."}))
	r = &recorder{TB: t}
	Lint(r, bad, []string{"flowfleet_test_things"})
	if len(r.errs) != 1 || !strings.HasPrefix(r.errs[0], "flowfleet_test_things: ") {
		t.Fatalf("a counter without _total: %v, want one lint problem", r.errs)
	}
	r = &recorder{TB: t}
	Lint(r, reg, []string{"flowfleet_test_other_total"})
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "names changed") {
		t.Fatalf("a wrong name list: %v, want one names failure", r.errs)
	}
}
