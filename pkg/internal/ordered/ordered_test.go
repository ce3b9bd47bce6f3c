package ordered

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Results are consumed in order whatever order the workers finish in, and every worker reuses its
// buffers.
func TestRunConsumesInOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		for _, n := range []int{0, 1, 2, 7, 100} {
			t.Run(fmt.Sprintf("workers_%d_n_%d", workers, n), func(t *testing.T) {
				var got []int
				var fresh atomic.Int64
				err := Run(n, workers, func(w, k int, buf []byte) ([]byte, error) {
					if cap(buf) == 0 {
						fresh.Add(1)
					}
					if k%3 == 0 {
						time.Sleep(time.Millisecond) // finish out of order
					}
					return strconv.AppendInt(append(buf, make([]byte, 64)...)[:0], int64(k), 10), nil
				}, func(b []byte) error {
					k, err := strconv.Atoi(string(b))
					got = append(got, k)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != n {
					t.Fatalf("consumed %d results, want %d", len(got), n)
				}
				for i, k := range got {
					if k != i {
						t.Fatalf("result %d is %d", i, k)
					}
				}
				if limit := int64(2 * max(1, min(workers, n))); fresh.Load() > limit {
					t.Errorf("%d fresh buffers, want at most %d", fresh.Load(), limit)
				}
			})
		}
	}
}

// The first error stops the work and is returned once the workers have stopped; nothing after it is
// consumed.
func TestRunStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	for _, workers := range []int{1, 2, 4} {
		var produced, consumed atomic.Int64
		err := Run(1000, workers, func(w, k int, buf []byte) ([]byte, error) {
			produced.Add(1)
			if k == 10 {
				return nil, boom
			}
			return append(buf, byte(k)), nil
		}, func(b []byte) error {
			consumed.Add(1)
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("workers %d: %v, want boom", workers, err)
		}
		if consumed.Load() != 10 {
			t.Errorf("workers %d: consumed %d, want the 10 before the error", workers, consumed.Load())
		}
		if produced.Load() > 10+int64(3*workers) {
			t.Errorf("workers %d: produced %d after an error at 10", workers, produced.Load())
		}
		if err := Run(5, workers, func(w, k int, buf []byte) ([]byte, error) { return buf, nil },
			func([]byte) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("workers %d: consume error: %v", workers, err)
		}
	}
}
