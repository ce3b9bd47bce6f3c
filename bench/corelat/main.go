// Command corelat measures the round trip of a cache line between two goroutines on two cores: how
// expensive it is for the stages of a pipeline to hand work to each other on this machine. On the
// workplace's VM it is about 80 ns most of the time and about 360 ns in some stretches, which is
// when pipelined conversion is slow (bench/README.md).
//
//	go run ./bench/corelat
package main

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

func main() {
	if runtime.GOMAXPROCS(0) < 2 {
		fmt.Println("corelat: one core only")
		return
	}
	const rounds = 1_000_000
	var flag atomic.Int64
	done := make(chan struct{})
	go func() {
		for i := int64(0); i < rounds; i++ {
			for flag.Load() != 2*i+1 {
			}
			flag.Store(2*i + 2)
		}
		close(done)
	}()
	start := time.Now()
	for i := int64(0); i < rounds; i++ {
		flag.Store(2*i + 1)
		for flag.Load() != 2*i+2 {
		}
	}
	<-done
	fmt.Printf("core-to-core round trip: %.0f ns\n", float64(time.Since(start).Nanoseconds())/rounds)
}
