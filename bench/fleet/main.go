// Command fleet is the fleet-size benchmark (issue 8): a thousand (or -sensors) simulated sensors, each
// its own mTLS stream with its own certificate, send a steady -rate of flows in batches every
// -interval and a window-end mark at every window boundary, against one collector on SQLite, or
// against -collectors collectors sharing a PostgreSQL store (-store postgres://…, sensors split evenly).
// It prints acknowledged flows/s, ack latency percentiles, the collectors' CPU and peak memory, and the
// time from each window-end mark to the window's sample appearing in ListSamples.
//
//	go run ./bench/fleet -sensors 1000
//	go run ./bench/fleet -sensors 1000 -collectors 2 -store "$(scripts/postgres.sh)"
//	bench/fleet/run.sh
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowfleet/flowfleet/bench/ingest/loadgen"
	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
)

type options struct {
	bin        string
	sensors    []int
	collectors int
	storeDSN   string
	rate       float64
	interval   time.Duration
	window     time.Duration
	grace      time.Duration
	duration   time.Duration
	inflight   int
	keep       bool
}

func main() {
	var o options
	sensors := flag.String("sensors", "1000", "comma-separated sensor counts, one run each")
	flag.StringVar(&o.bin, "collector", "", "collector binary (default: go build ./cmd/collector)")
	flag.IntVar(&o.collectors, "collectors", 1, "collector processes; more than one needs -store postgres://…")
	flag.StringVar(&o.storeDSN, "store", "", `"" for SQLite, or a postgres:// DSN (a fresh schema per run)`)
	flag.Float64Var(&o.rate, "rate", 200, "flows/s each sensor sends")
	flag.DurationVar(&o.interval, "interval", time.Second, "how often each sensor sends a batch")
	flag.DurationVar(&o.window, "window", 10*time.Second, "window length")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "grace for windows without an end mark")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measured time (after the first window boundary)")
	flag.IntVar(&o.inflight, "inflight", 16, "unacknowledged batches per sensor, at most")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.Parse()
	for _, f := range strings.Split(*sensors, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "fleet: bad -sensors %q\n", *sensors)
			os.Exit(2)
		}
		o.sensors = append(o.sensors, n)
	}
	if o.collectors > 1 && o.storeDSN == "" {
		fmt.Fprintln(os.Stderr, "fleet: several collectors need a shared -store postgres://…")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	tmp, err := os.MkdirTemp("", "flowfleet-bench-fleet")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.bin == "" {
		fmt.Fprintln(os.Stderr, "building ./cmd/collector")
		if o.bin, err = loadgen.BuildCollector(tmp, "./cmd/collector"); err != nil {
			return err
		}
	}
	p, err := loadgen.NewPKI(filepath.Join(tmp, "pki"))
	if err != nil {
		return err
	}
	maxN := 0
	for _, n := range o.sensors {
		maxN = max(maxN, n)
	}
	files := make([]auth.Files, maxN)
	for i := range files {
		if files[i], err = p.Issue(auth.RoleSensor, fmt.Sprintf("sensor%05d", i)); err != nil {
			return err
		}
	}
	reader, err := p.Issue(auth.RoleReader, "bench-reader")
	if err != nil {
		return err
	}
	store := "SQLite"
	if o.storeDSN != "" {
		store = "PostgreSQL"
	}
	fmt.Printf("| store | collectors | sensors | offered flows/s | acked flows/s | ack p50 | ack p99 | collector CPU | collector peak RSS | PostgreSQL CPU | window end → sample p50 / p99 / max | windows | machine busy |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range o.sensors {
		r, err := runOnce(o, p, files[:n], reader, tmp)
		if err != nil {
			return fmt.Errorf("%d sensors: %w", n, err)
		}
		pg := "–"
		if o.storeDSN != "" {
			pg = fmt.Sprintf("%.2f cores", r.pgCPU)
		}
		fmt.Printf("| %s | %d | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %s / %s / %s | %d/%d | %.0f%% |\n", store, o.collectors, n,
			float64(n)*o.rate, r.flowsPerSec, ms(r.p50), ms(r.p99), r.cpu, r.hwm, pg, ms(r.close50), ms(r.close99), ms(r.closeMax),
			r.closed, r.windows, 100*r.machine)
	}
	return nil
}

func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

type result struct {
	flowsPerSec                float64
	p50, p99                   time.Duration
	cpu, hwm                   string
	pgCPU, machine             float64
	close50, close99, closeMax time.Duration
	closed, windows            int
}

func runOnce(o options, p *loadgen.PKI, sensors []auth.Files, readerFiles auth.Files, tmp string) (result, error) {
	var r result
	n := len(sensors)
	runDir := filepath.Join(tmp, fmt.Sprintf("run-%d", n))
	defer os.RemoveAll(runDir)
	dsn := ""
	if o.storeDSN != "" {
		d, drop, err := loadgen.FreshSchema(context.Background(), o.storeDSN)
		if err != nil {
			return r, err
		}
		defer drop()
		dsn = d
	}
	procs := make([]*loadgen.Proc, o.collectors)
	for i := range procs {
		pr, err := loadgen.StartCollector(p, loadgen.CollectorOptions{Bin: o.bin, Name: fmt.Sprintf("c%d", i),
			DataDir: filepath.Join(runDir, fmt.Sprintf("c%d", i)), Store: dsn, Window: o.window, Grace: o.grace})
		if err != nil {
			return r, err
		}
		defer pr.Stop()
		procs[i] = pr
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flows := max(1, int(o.rate*o.interval.Seconds()))
	cfgs := make([]loadgen.StreamConfig, n)
	for i := range cfgs {
		cfgs[i] = loadgen.StreamConfig{Addr: procs[i%len(procs)].Addr, Files: sensors[i], Host: fmt.Sprintf("sensor%05d", i),
			Index: i, Window: o.window, Flows: flows, InFlight: o.inflight, Interval: o.interval, WindowEnds: true}
	}
	began := time.Now()
	streams, err := loadgen.OpenAll(ctx, cfgs, 64)
	if err != nil {
		return r, err
	}
	fmt.Fprintf(os.Stderr, "%d sensors connected in %s\n", n, time.Since(began).Round(time.Millisecond))
	stats := loadgen.NewStats()
	running := loadgen.RunAll(ctx, streams, stats)
	// Measure from the first window boundary after every sensor is sending: whole windows only.
	w := int64(o.window / time.Second)
	first := (time.Now().Unix()/w + 1) * w
	time.Sleep(time.Until(time.Unix(first, 0)))
	conn, err := dialReader(procs[0].Addr, readerFiles)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	watcher := newSampleWatcher(flowfleetv1.NewSampleServiceClient(conn), first)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { watcher.run(watchCtx, stats); close(watchDone) }()

	pids := make([]int, len(procs))
	u0 := make([]loadgen.Usage, len(procs))
	for i, pr := range procs {
		pids[i] = pr.Cmd.Process.Pid
		u0[i] = loadgen.ProcUsage(pids[i])
	}
	pg0 := loadgen.CommandCPU("postgres")
	var machine loadgen.Machine
	machine.Start()
	stats.Measuring.Store(true)
	t0 := time.Now()
	time.Sleep(o.duration)
	stats.Measuring.Store(false)
	elapsed := time.Since(t0)
	r.pgCPU = loadgen.CPUDelta(pg0, loadgen.CommandCPU("postgres")).Seconds() / elapsed.Seconds()
	_, r.machine = machine.Stop(elapsed)
	var cpus, hwms []string
	for i := range procs {
		u := loadgen.ProcUsage(pids[i])
		cpus = append(cpus, fmt.Sprintf("%.2f", (u.CPU-u0[i].CPU).Seconds()/elapsed.Seconds()))
		hwms = append(hwms, loadgen.MB(u.HWM))
	}
	r.cpu = strings.Join(cpus, " + ") + " cores"
	r.hwm = strings.Join(hwms, " + ")
	// Windows whose end mark went out while measuring; wait for their samples.
	end := t0.Add(o.duration)
	watcher.setHorizon(end)
	deadline := time.Now().Add(o.window + o.grace + 30*time.Second)
	for time.Now().Before(deadline) && watcher.outstanding(stats, end) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	stopWatch()
	<-watchDone
	cancel()
	if err := running.Wait(); err != nil {
		b, _ := os.ReadFile(procs[0].Log)
		return r, fmt.Errorf("stream: %w\ncollector log:\n%s", err, string(b[max(0, len(b)-4000):]))
	}
	r.flowsPerSec = float64(stats.Flows()) / elapsed.Seconds()
	r.p50, r.p99 = stats.Latency(0.5), stats.Latency(0.99)
	lat, total := watcher.latencies(stats, t0, end)
	r.windows, r.closed = total, len(lat)
	r.close50, r.close99 = loadgen.Quantile(lat, 0.5), loadgen.Quantile(lat, 0.99)
	if len(lat) > 0 {
		r.closeMax = lat[len(lat)-1]
	}
	return r, nil
}

func dialReader(addr string, files auth.Files) (*grpc.ClientConn, error) {
	creds, err := loadgen.ClientCreds(files)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

// sampleWatcher polls ListSamples for the windows whose end marks were sent and records when each
// window's sample first appears.
type sampleWatcher struct {
	client  flowfleetv1.SampleServiceClient
	from    int64 // first window start of interest
	mu      sync.Mutex
	seen    map[loadgen.WindowKey]time.Time
	horizon time.Time
}

func newSampleWatcher(c flowfleetv1.SampleServiceClient, from int64) *sampleWatcher {
	return &sampleWatcher{client: c, from: from, seen: map[loadgen.WindowKey]time.Time{}}
}

func (w *sampleWatcher) setHorizon(t time.Time) {
	w.mu.Lock()
	w.horizon = t
	w.mu.Unlock()
}

// pending returns the window starts with an end mark sent (before the horizon, if set) and no sample
// seen yet.
func (w *sampleWatcher) pending(stats *loadgen.Stats) map[int64]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[int64]int{}
	for k, sent := range stats.WindowEnds() {
		if k.Start < w.from || (!w.horizon.IsZero() && sent.After(w.horizon)) {
			continue
		}
		if _, ok := w.seen[k]; !ok {
			out[k.Start]++
		}
	}
	return out
}

func (w *sampleWatcher) outstanding(stats *loadgen.Stats, end time.Time) int {
	n := 0
	for _, c := range w.pending(stats) {
		n += c
	}
	return n
}

func (w *sampleWatcher) run(ctx context.Context, stats *loadgen.Stats) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for start := range w.pending(stats) {
			token := ""
			for {
				resp, err := w.client.ListSamples(ctx, &flowfleetv1.ListSamplesRequest{PageSize: 1000, PageToken: token,
					Since: timestamppb.New(time.Unix(start, 0)), Until: timestamppb.New(time.Unix(start+1, 0))})
				if err != nil {
					break
				}
				now := time.Now()
				w.mu.Lock()
				for _, s := range resp.GetSamples() {
					k := loadgen.WindowKey{Host: s.GetHost(), Start: s.GetWindowStart()}
					if _, ok := w.seen[k]; !ok {
						w.seen[k] = now
					}
				}
				w.mu.Unlock()
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
		}
	}
}

// latencies returns, sorted, the time from end mark to sample for the windows whose end mark was sent
// between from and to, and how many such windows there were.
func (w *sampleWatcher) latencies(stats *loadgen.Stats, from, to time.Time) ([]time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	total := 0
	for k, sent := range stats.WindowEnds() {
		if sent.Before(from) || sent.After(to) || k.Start < w.from {
			continue
		}
		total++
		if seen, ok := w.seen[k]; ok {
			out = append(out, seen.Sub(sent))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, total
}
