package logx

import (
	"sync"
	"time"
)

// SuppressedKey is the log attribute that carries how many lines a Limiter held back since the last
// line it let through.
const SuppressedKey = "not_logged_since_last"

// MaxLimiterKeys bounds the keys one Limiter tracks. Callers use a fixed set of keys (reasons, not
// peer addresses); past the bound, keys whose interval has passed are forgotten, and if none has,
// a line under a new key is held back under a shared overflow key, so a flood of keys is still muted.
const MaxLimiterKeys = 1024

// overflowKey collects the lines of new keys once MaxLimiterKeys are tracked.
const overflowKey = "\x00overflow"

// Limiter mutes floods of log lines: it lets at most one line per key through in each interval and
// counts the lines it held back, to report with the next line it lets through (under SuppressedKey).
// It is safe for concurrent use. The first line of a key always goes through.
type Limiter struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*limitState
}

type limitState struct {
	last       time.Time // when the last line went through
	suppressed int       // lines held back since
}

// NewLimiter returns a Limiter letting one line per key through every interval.
func NewLimiter(every time.Duration) *Limiter {
	return &Limiter{every: every, keys: make(map[string]*limitState)}
}

// Every returns the Limiter's interval.
func (l *Limiter) Every() time.Duration { return l.every }

// Allow reports whether a line under key may be logged at now and, if so, how many lines under key
// were held back since the last one let through.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		if len(l.keys) >= MaxLimiterKeys {
			l.forgetLocked(now)
		}
		if len(l.keys) >= MaxLimiterKeys {
			key = overflowKey
			st = l.keys[key]
		}
		if st == nil {
			l.keys[key] = &limitState{last: now}
			return true, 0
		}
	}
	if now.Sub(st.last) < l.every {
		st.suppressed++
		return false, 0
	}
	suppressed = st.suppressed
	st.last, st.suppressed = now, 0
	return true, suppressed
}

// forgetLocked drops the keys whose interval has passed with nothing held back: their next line
// goes through either way.
func (l *Limiter) forgetLocked(now time.Time) {
	for k, st := range l.keys {
		if k != overflowKey && st.suppressed == 0 && now.Sub(st.last) >= l.every {
			delete(l.keys, k)
		}
	}
}
