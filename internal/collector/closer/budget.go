package closer

import "sync"

// byteBudget is a weighted semaphore over bytes. Windows close closeParallel at a time, and building a
// sample takes about three times its window's encoded flows: without a budget, four windows at the
// per-window bound would need four times the memory of one. With it, the windows being built at once
// hold at most the budget (one window's bound) between them; a larger window waits for the others and
// then builds alone. Small windows, the usual case, still build in parallel.
type byteBudget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	total int64
	free  int64
}

// newByteBudget makes a budget of total bytes (at least 1).
func newByteBudget(total int64) *byteBudget {
	total = max(total, 1)
	b := &byteBudget{total: total, free: total}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n bytes (at most the whole budget) are free and takes them; it returns the
// release.
func (b *byteBudget) acquire(n int64) func() {
	n = min(max(n, 0), b.total)
	b.mu.Lock()
	for b.free < n {
		b.cond.Wait()
	}
	b.free -= n
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.free += n
		b.mu.Unlock()
		b.cond.Broadcast()
	}
}
