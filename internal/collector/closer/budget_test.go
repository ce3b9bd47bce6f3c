package closer

import "testing"

// The build budget lets small windows build together and makes one that needs the whole budget wait
// for them, then build alone.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	r1 := b.acquire(30)
	r2 := b.acquire(30)
	got := make(chan func())
	go func() { got <- b.acquire(1000) }() // more than the budget: takes all of it
	select {
	case <-got:
		t.Fatal("a window needing the whole budget built beside two others")
	default:
	}
	r1()
	r2()
	r3 := <-got
	if b.free != 0 {
		t.Fatalf("free %d while the big window builds, want 0", b.free)
	}
	r3()
	if b.free != 100 {
		t.Fatalf("free %d after every release, want 100", b.free)
	}
}
