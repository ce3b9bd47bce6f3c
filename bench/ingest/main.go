// Command ingest measures how many flows per second one collector process stores and acknowledges
// (issue 4). For each stream count it starts a fresh collector (SQLite in a temporary directory unless
// -store names a PostgreSQL server), opens that many concurrent ingest streams over mutual TLS on
// loopback from this one process, each with its own sensor certificate, and sends batches of -flows
// realistic flows with at most -inflight unacknowledged per stream, as fast as acknowledgements come
// back, for -duration after a -warmup. It prints flows/s, ack latency percentiles, and the collector's
// CPU and peak resident memory (VmHWM).
//
//	go run ./bench/ingest -streams 1,100,1000
//	bench/ingest/run.sh            # builds the collector and runs the default sweep
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowfleet/flowfleet/bench/ingest/loadgen"
	"github.com/flowfleet/flowfleet/internal/auth"
)

func main() {
	var (
		bin        = flag.String("collector", "", "collector binary (default: go build ./cmd/collector)")
		streamsArg = flag.String("streams", "1,100,1000", "comma-separated stream counts, one run each")
		duration   = flag.Duration("duration", 20*time.Second, "measured time per run")
		warmup     = flag.Duration("warmup", 5*time.Second, "time before measuring")
		flows      = flag.Int("flows", 500, "flows per batch")
		inflight   = flag.Int("inflight", 4, "unacknowledged batches per stream, at most")
		rate       = flag.Float64("rate", 0, "total flows/s to offer, spread over the streams (0: as fast as acknowledgements allow)")
		storeDSN   = flag.String("store", "", `"" for SQLite in a temporary directory, or a postgres:// DSN (a fresh schema per run)`)
		window     = flag.Duration("window", 300*time.Second, "window length")
		pprofAddr  = flag.String("pprof", "", "with a profcollector binary: serve pprof there and save a CPU profile of the measured time")
		profOut    = flag.String("cpuprofile", "collector-cpu.pprof", "where -pprof saves the profile (stream count appended)")
		keep       = flag.Bool("keep", false, "keep the temporary directory")
	)
	flag.Parse()
	if err := run(*bin, *streamsArg, *duration, *warmup, *flows, *inflight, *rate, *storeDSN, *window, *pprofAddr, *profOut, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run(bin, streamsArg string, duration, warmup time.Duration, flows, inflight int, rate float64, storeDSN string,
	window time.Duration, pprofAddr, profOut string, keep bool) error {
	var counts []int
	for _, f := range strings.Split(streamsArg, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -streams %q", streamsArg)
		}
		counts = append(counts, n)
	}
	tmp, err := os.MkdirTemp("", "flowfleet-bench-ingest")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if bin == "" {
		fmt.Fprintln(os.Stderr, "building ./cmd/collector")
		if bin, err = loadgen.BuildCollector(tmp, "./cmd/collector"); err != nil {
			return err
		}
	}
	p, err := loadgen.NewPKI(filepath.Join(tmp, "pki"))
	if err != nil {
		return err
	}
	maxN := 0
	for _, n := range counts {
		maxN = max(maxN, n)
	}
	began := time.Now()
	sensors := make([]auth.Files, maxN)
	for i := range sensors {
		if sensors[i], err = p.Issue(auth.RoleSensor, fmt.Sprintf("bench%05d", i)); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "issued %d sensor certificates in %s\n", maxN, time.Since(began).Round(time.Millisecond))
	fmt.Printf("| streams | offered | flows/s | batches/s | ack p50 | ack p99 | collector CPU | collector peak RSS | batches/commit | load generator CPU | machine busy |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range counts {
		r, err := runOnce(bin, p, sensors[:n], tmp, duration, warmup, flows, inflight, rate, storeDSN, window, pprofAddr, profOut)
		if err != nil {
			return fmt.Errorf("%d streams: %w", n, err)
		}
		offered := "max"
		if rate > 0 {
			offered = fmt.Sprintf("%.0f", rate)
		}
		fmt.Printf("| %d | %s | %.0f | %.0f | %s | %s | %.2f cores | %s | %.1f | %.2f cores | %.0f%% |\n", n, offered, r.flowsPerSec,
			r.batchesPerSec, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.cpu, loadgen.MB(r.hwm),
			r.perCommit, r.selfCPU, 100*r.machine)
	}
	return nil
}

type result struct {
	flowsPerSec, batchesPerSec float64
	p50, p99                   time.Duration
	cpu, selfCPU, machine      float64
	hwm                        int64
	perCommit                  float64
}

func runOnce(bin string, p *loadgen.PKI, sensors []auth.Files, tmp string, duration, warmup time.Duration, flows, inflight int,
	rate float64, storeDSN string, window time.Duration, pprofAddr, profOut string) (result, error) {
	var r result
	n := len(sensors)
	dataDir := filepath.Join(tmp, fmt.Sprintf("run-%d", n))
	defer os.RemoveAll(dataDir)
	dsn := ""
	if storeDSN != "" {
		d, drop, err := loadgen.FreshSchema(context.Background(), storeDSN)
		if err != nil {
			return r, err
		}
		defer drop()
		dsn = d
	}
	var env []string
	if pprofAddr != "" {
		env = append(env, "BENCH_PPROF="+pprofAddr)
	}
	proc, err := loadgen.StartCollector(p, loadgen.CollectorOptions{Bin: bin, Name: "bench", DataDir: dataDir, Store: dsn,
		Window: window, Grace: 60 * time.Second, Env: env})
	if err != nil {
		return r, err
	}
	defer proc.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(n*flows) / rate * float64(time.Second))
	}
	cfgs := make([]loadgen.StreamConfig, n)
	for i := range cfgs {
		cfgs[i] = loadgen.StreamConfig{Addr: proc.Addr, Files: sensors[i], Host: fmt.Sprintf("bench%05d", i), Index: i,
			Window: window, Flows: flows, InFlight: inflight, Interval: interval}
	}
	began := time.Now()
	streams, err := loadgen.OpenAll(ctx, cfgs, 64)
	if err != nil {
		return r, err
	}
	fmt.Fprintf(os.Stderr, "%d streams open in %s\n", n, time.Since(began).Round(time.Millisecond))
	stats := loadgen.NewStats()
	running := loadgen.RunAll(ctx, streams, stats)
	time.Sleep(warmup)
	pid := proc.Cmd.Process.Pid
	u0, self0 := loadgen.ProcUsage(pid), loadgen.ProcUsage(os.Getpid())
	var profDone chan error
	if pprofAddr != "" {
		profDone = make(chan error, 1)
		go func() { profDone <- saveProfile(pprofAddr, duration, fmt.Sprintf("%s.%d", profOut, n)) }()
	}
	var machine loadgen.Machine
	machine.Start()
	stats.Measuring.Store(true)
	t0 := time.Now()
	time.Sleep(duration)
	stats.Measuring.Store(false)
	elapsed := time.Since(t0)
	_, r.machine = machine.Stop(elapsed)
	u1, self1 := loadgen.ProcUsage(pid), loadgen.ProcUsage(os.Getpid())
	if profDone != nil {
		if err := <-profDone; err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
		}
	}
	if sum, err := loadgen.Metric(proc.MetricsAddr, "flowfleet_collector_commit_batches_sum"); err == nil {
		if cnt, err := loadgen.Metric(proc.MetricsAddr, "flowfleet_collector_commit_batches_count"); err == nil && cnt > 0 {
			r.perCommit = sum / cnt
		}
	}
	cancel()
	if err := running.Wait(); err != nil {
		b, _ := os.ReadFile(proc.Log)
		return r, fmt.Errorf("stream: %w\ncollector log:\n%s", err, tail(string(b), 4000))
	}
	r.flowsPerSec = float64(stats.Flows()) / elapsed.Seconds()
	r.batchesPerSec = float64(stats.Batches()) / elapsed.Seconds()
	r.p50, r.p99 = stats.Latency(0.5), stats.Latency(0.99)
	r.cpu = (u1.CPU - u0.CPU).Seconds() / elapsed.Seconds()
	r.selfCPU = (self1.CPU - self0.CPU).Seconds() / elapsed.Seconds()
	r.hwm = u1.HWM
	fmt.Fprintf(os.Stderr, "%d streams: store %s on disk\n", n, loadgen.MB(loadgen.DirSize(dataDir)))
	return r, nil
}

func saveProfile(addr string, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	if err == nil {
		fmt.Fprintln(os.Stderr, "collector CPU profile:", path)
	}
	return err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
