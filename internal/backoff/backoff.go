// Package backoff is the one exponential backoff schedule of the programs: the sensor's reconnects
// (internal/sensor/ship), the relay's upload retries (internal/relay) and the collector's retries of a
// window or sample file that could not be written (internal/collector/closer) all compute their waits
// here, each with its own Policy.
//
// Retry n (1 for the first) waits Base × Multiplier^(n−1), at most Max, and then jitter: none, a spread
// of ± Spread around it, or equal jitter (uniform between half of it and all of it).
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy is one backoff schedule.
type Policy struct {
	// Base is the first wait; Max, when above 0, caps every wait (before jitter).
	Base, Max time.Duration
	// Multiplier grows the wait after each retry; below 1 (the zero value included) it is 2.
	Multiplier float64
	// Spread jitters each wait uniformly by ± this fraction (0 ≤ Spread < 1; 0 is none).
	Spread float64
	// Equal draws each wait uniformly from [wait/2, wait] ("equal jitter"); it wins over Spread.
	Equal bool
}

// Delay returns the wait before retry attempt (1 for the first; below 1 counts as 1).
func (p Policy) Delay(attempt int) time.Duration {
	d := p.ceiling(attempt)
	switch {
	case p.Equal:
		half := d / 2
		return half + rand.N(d-half+1)
	case p.Spread > 0:
		f := float64(d) * (1 + p.Spread*(2*rand.Float64()-1))
		return time.Duration(max(f, 0))
	}
	return d
}

// ceiling is retry attempt's wait before jitter.
func (p Policy) ceiling(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	m := p.Multiplier
	if m < 1 {
		m = 2
	}
	d := float64(p.Base) * math.Pow(m, float64(max(attempt, 1)-1))
	switch {
	case p.Max > 0 && d >= float64(p.Max):
		return p.Max
	case d >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(d)
}
