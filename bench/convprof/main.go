// Command convprof converts one capture as `flowctl convert` does and writes a CPU profile of it, for
// finding where conversion time goes (go tool pprof convprof cpu.pprof).
//
//	go run ./bench/convprof -cpuprofile cpu.pprof CAPTURE
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/flowfleet/flowfleet/pkg/formats/convert"
)

func main() {
	prof := flag.String("cpuprofile", "cpu.pprof", "where to write the CPU profile")
	runs := flag.Int("runs", 1, "conversions to run (each is timed, all are profiled)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: convprof [-cpuprofile FILE] [-runs N] CAPTURE")
		os.Exit(2)
	}
	out, err := os.MkdirTemp("", "convprof")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(out)
	f, err := os.Create(*prof)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < *runs; i++ {
		t0 := time.Now()
		res, err := convert.File(context.Background(), flag.Arg(0), convert.Options{OutDir: out})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		d := time.Since(t0)
		fmt.Printf("%d frames, %d flows, %.3f s (read %.3f s, written %.3f s), %.2f M frames/s\n", res.Frames, res.Flows,
			d.Seconds(), res.Read.Seconds(), res.Write.Seconds(), float64(res.Frames)/d.Seconds()/1e6)
	}
	pprof.StopCPUProfile()
	f.Close()
}
