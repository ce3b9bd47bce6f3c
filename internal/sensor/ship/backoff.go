package ship

import (
	"time"

	"github.com/flowfleet/flowfleet/internal/backoff"
)

// Backoff is an exponential reconnection schedule with jitter, as grpc-go's backoff.Config. Zero fields
// take DefaultBackoff's values.
type Backoff struct {
	// Base is the first delay.
	Base time.Duration
	// Multiplier grows the delay after each failed attempt.
	Multiplier float64
	// Jitter spreads each delay uniformly by ± this fraction (0: the default, negative: none).
	Jitter float64
	// Max caps the delay (before jitter).
	Max time.Duration
	// ResetAfter: a stream that stayed open at least this long resets the schedule to Base.
	ResetAfter time.Duration
}

// DefaultBackoff is 1 s × 1.6 per attempt, ±20 %, at most 60 s, reset after a stream that lasted 30 s.
var DefaultBackoff = Backoff{Base: time.Second, Multiplier: 1.6, Jitter: 0.2, Max: 60 * time.Second, ResetAfter: 30 * time.Second}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff
	if b.Base > 0 {
		d.Base = b.Base
	}
	if b.Multiplier >= 1 {
		d.Multiplier = b.Multiplier
	}
	switch {
	case b.Jitter > 0 && b.Jitter < 1:
		d.Jitter = b.Jitter
	case b.Jitter < 0:
		d.Jitter = 0
	}
	if b.Max > 0 {
		d.Max = b.Max
	}
	if b.ResetAfter > 0 {
		d.ResetAfter = b.ResetAfter
	}
	return d
}

// Delay returns the wait before reconnection attempt n (0 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	return backoff.Policy{Base: b.Base, Max: b.Max, Multiplier: b.Multiplier, Spread: b.Jitter}.Delay(n + 1)
}
