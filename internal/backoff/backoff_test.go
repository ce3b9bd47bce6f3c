package backoff

import (
	"math"
	"testing"
	"time"
)

// Without jitter the waits double from Base and stop at Max; attempts below 1 count as the first.
func TestDelayDoublesToMax(t *testing.T) {
	p := Policy{Base: 2 * time.Second, Max: 10 * time.Minute}
	want := []time.Duration{2 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
	for i, w := range want {
		if got := p.Delay(i); got != w {
			t.Errorf("Delay(%d) = %s, want %s", i, got, w)
		}
	}
	for _, n := range []int{10, 11, 64, 1 << 30} {
		if got := p.Delay(n); got != 10*time.Minute {
			t.Errorf("Delay(%d) = %s, want the cap 10m", n, got)
		}
	}
	if got := (Policy{Base: time.Second, Max: time.Millisecond}).Delay(1); got != time.Millisecond {
		t.Errorf("a cap below the base: %s, want the cap", got)
	}
	if got := (Policy{Base: time.Second}).Delay(100); got != time.Duration(math.MaxInt64) {
		t.Errorf("no cap, attempt 100: %s, want the longest duration", got)
	}
}

// A multiplier other than 2 grows the wait by it.
func TestDelayMultiplier(t *testing.T) {
	p := Policy{Base: time.Second, Max: time.Minute, Multiplier: 1.6}
	if got := p.Delay(3); got != 2560*time.Millisecond {
		t.Errorf("Delay(3) = %s, want 2.56s", got)
	}
}

// Equal jitter stays within [wait/2, wait]; a spread within ± its fraction; both vary.
func TestJitterBounds(t *testing.T) {
	eq := Policy{Base: time.Second, Max: time.Minute, Equal: true}
	sp := Policy{Base: time.Second, Max: time.Minute, Spread: 0.2}
	seenEq, seenSp := map[time.Duration]bool{}, map[time.Duration]bool{}
	for i := 0; i < 1000; i++ {
		if d := eq.Delay(3); d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("equal jitter: %s outside [2s, 4s]", d)
		} else {
			seenEq[d] = true
		}
		if d := sp.Delay(3); d < 3200*time.Millisecond || d > 4800*time.Millisecond {
			t.Fatalf("spread: %s outside 4s ± 20%%", d)
		} else {
			seenSp[d] = true
		}
	}
	if len(seenEq) < 2 || len(seenSp) < 2 {
		t.Fatalf("jitter gave %d and %d distinct waits in 1000 draws", len(seenEq), len(seenSp))
	}
}
