package logx

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// One line per key and interval goes through; the next one after the interval carries the count of
// those held back, and other keys are independent.
func TestLimiterOneLinePerKeyAndInterval(t *testing.T) {
	l := NewLimiter(10 * time.Second)
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow("idle", t0); !ok || n != 0 {
		t.Fatalf("first line: %v, %d", ok, n)
	}
	for i := 1; i <= 3; i++ {
		if ok, _ := l.Allow("idle", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("line %d s later, within the interval, let through", i)
		}
	}
	if ok, _ := l.Allow("time_range", t0.Add(time.Second)); !ok {
		t.Fatal("another key held back")
	}
	if ok, n := l.Allow("idle", t0.Add(10*time.Second)); !ok || n != 3 {
		t.Fatalf("after the interval: %v, %d held; want through with 3 held", ok, n)
	}
	if ok, n := l.Allow("idle", t0.Add(20*time.Second)); !ok || n != 0 {
		t.Fatalf("next interval: %v, %d held; want through with 0 held (count reset)", ok, n)
	}
}

// The number of keys tracked stays bounded; new keys past the bound are muted together, and keys
// whose interval has passed make room again.
func TestLimiterBoundsItsKeys(t *testing.T) {
	l := NewLimiter(time.Minute)
	t0 := time.Unix(1000, 0)
	for i := range MaxLimiterKeys {
		if ok, _ := l.Allow(fmt.Sprint("k", i), t0); !ok {
			t.Fatalf("key %d held back", i)
		}
	}
	if ok, _ := l.Allow("new-1", t0); !ok {
		t.Fatal("the first overflowing key should go through once (under the overflow key)")
	}
	if ok, _ := l.Allow("new-2", t0.Add(time.Second)); ok {
		t.Fatal("a second overflowing key within the interval let through")
	}
	if n := len(l.keys); n > MaxLimiterKeys+1 {
		t.Fatalf("%d keys tracked, bound %d (+1 overflow)", n, MaxLimiterKeys)
	}
	if ok, _ := l.Allow("later", t0.Add(2*time.Minute)); !ok {
		t.Fatal("a new key after the old ones expired held back")
	}
	if n := len(l.keys); n > 3 {
		t.Fatalf("%d keys tracked after expiry, want the expired ones forgotten", n)
	}
}

// Concurrent callers: exactly one line of a burst within one interval goes through.
func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(time.Hour)
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	through := 0
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow("k", now); ok {
				mu.Lock()
				through++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if through != 1 {
		t.Fatalf("%d lines went through, want 1", through)
	}
	if ok, n := l.Allow("k", now.Add(time.Hour)); !ok || n != 31 {
		t.Fatalf("after the interval: %v, %d held; want 31", ok, n)
	}
}
