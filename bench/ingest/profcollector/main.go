// Command profcollector is cmd/collector with net/http/pprof served on the address in BENCH_PPROF
// (e.g. 127.0.0.1:6060), for profiling the collector under bench/ingest (-pprof). Not for production.
package main

import (
	"context"
	"fmt"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/flowfleet/flowfleet/internal/collector"
)

func main() {
	if addr := os.Getenv("BENCH_PPROF"); addr != "" {
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(int(time.Millisecond))
		go func() { _ = http.ListenAndServe(addr, nil) }() //nolint:gosec // loopback, benchmark only
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := collector.NewCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(1)
	}
}
