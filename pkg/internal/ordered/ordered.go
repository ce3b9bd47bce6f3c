// Package ordered runs numbered pieces of work on several goroutines and consumes their results in
// number order: how a large BayseFlow file is exported and encoded on every core and written in order.
package ordered

import "sync"

// Run calls produce for k = 0 … n-1 on up to workers goroutines (worker w gets k = w, w+workers, …)
// and consume with each result in order of k, on the calling goroutine. produce appends its result to
// buf, a buffer of an earlier result of the same worker once consume has returned, and returns it.
// Each worker holds at most two results, so memory is bounded by the size of 2×workers results. The
// first error, of produce or consume, stops the work; Run returns it after every worker has stopped.
func Run(n, workers int, produce func(worker, k int, buf []byte) ([]byte, error), consume func([]byte) error) error {
	workers = max(1, min(workers, n))
	if workers == 1 {
		var buf []byte
		for k := range n {
			var err error
			if buf, err = produce(0, k, buf[:0]); err != nil {
				return err
			}
			if err := consume(buf); err != nil {
				return err
			}
		}
		return nil
	}
	type result struct {
		b   []byte
		err error
	}
	outs := make([]chan result, workers)
	frees := make([]chan []byte, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		// Two buffers a worker: one it fills while the other waits to be consumed. Neither channel ever
		// blocks its sender: each holds at most the two buffers.
		outs[w] = make(chan result, 2)
		frees[w] = make(chan []byte, 2)
		frees[w] <- nil
		frees[w] <- nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < n; k += workers {
				var buf []byte
				select {
				case buf = <-frees[w]:
				case <-stop:
					return
				}
				b, err := produce(w, k, buf[:0])
				outs[w] <- result{b, err}
				if err != nil {
					return
				}
			}
		}()
	}
	var err error
	for k := 0; k < n && err == nil; k++ {
		r := <-outs[k%workers]
		if err = r.err; err == nil {
			err = consume(r.b)
		}
		frees[k%workers] <- r.b
	}
	close(stop)
	wg.Wait()
	return err
}
