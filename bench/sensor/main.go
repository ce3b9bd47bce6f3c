//go:build linux

// Command sensorbench measures the real sensor binary capturing on a veth (issue 5): for each capture
// method it replays a large capture through the veth at rising packet rates and reports the highest rate
// the sensor takes with zero drops (kernel and queue drops, from its metrics endpoint), the sensor's CPU
// per 100,000 packets/s (utime+stime from /proc/PID/stat) and, replaying a capture of about a million
// distinct flows inside one window, the flows the engine held and the sensor's peak memory (VmHWM).
//
// It expects the namespaces bench/sensor/run.sh creates and runs inside the control namespace, where it
// starts the collector itself (one per phase, with the phase's window); the sensor and the sender
// (bench/sensor/sender) run under `ip netns exec` in theirs. Use run.sh; the flags are its knobs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	work, pki                        string
	sensorBin, collectorBin          string
	senderBin                        string
	nsSensor, nsSend                 string
	iface                            string
	collectorAddr, metricsAddr       string
	capture, flowsCapture            string
	methods                          []string
	start, step, max                 float64
	stepDur, window, flowsWindow     time.Duration
	flowsRate, flushRate             float64
	flows, maxFlows                  int
	batch                            int
	noFlows                          bool
	failSteps                        int
	timeout                          time.Duration
	bufferBytes, queuePackets, extra string
}

func main() {
	var c config
	var methods string
	flag.StringVar(&c.work, "work", "work/bench/sensor", "work directory: logs, spools, collector data")
	flag.StringVar(&c.pki, "pki", "", "certificate directory (ca.pem, collector-bench.pem, sensor-bench-sensor.pem and keys); default WORK/pki")
	flag.StringVar(&c.sensorBin, "sensor", "", "sensor binary (default WORK/sensor)")
	flag.StringVar(&c.collectorBin, "collector", "", "collector binary (default WORK/collector)")
	flag.StringVar(&c.senderBin, "sender", "", "sender binary (default WORK/sender)")
	flag.StringVar(&c.nsSensor, "ns-sensor", "ffbs-sensor", "the sensor's network namespace")
	flag.StringVar(&c.nsSend, "ns-send", "ffbs-send", "the sender's network namespace")
	flag.StringVar(&c.iface, "iface", "ffbs-data", "the veth's name (the same at both ends)")
	flag.StringVar(&c.collectorAddr, "collector-addr", "10.93.0.1:17643", "collector listen address, in this namespace")
	flag.StringVar(&c.metricsAddr, "metrics-addr", "10.93.0.2:19464", "sensor metrics address, in the sensor's namespace")
	flag.StringVar(&c.capture, "capture", "", "capture replayed at each rate (default WORK/big.pcap)")
	flag.StringVar(&c.flowsCapture, "flows-capture", "", "capture of many distinct flows (default WORK/flows.pcap)")
	flag.StringVar(&methods, "methods", "pcap,afpacket", "capture methods to measure")
	flag.BoolVar(&c.noFlows, "no-flows", false, "skip the many-flows phase")
	flag.Float64Var(&c.start, "start", 50000, "first rate, packets/s")
	flag.Float64Var(&c.step, "step", 50000, "rate step, packets/s")
	flag.Float64Var(&c.max, "max", 1000000, "highest rate tried, packets/s")
	flag.IntVar(&c.failSteps, "fail-steps", 2, "stop a sweep after this many steps in a row with drops")
	flag.DurationVar(&c.stepDur, "step-duration", 10*time.Second, "sending time per rate")
	flag.DurationVar(&c.window, "window", 10*time.Second, "sensor window during the sweep (a step as long as a window holds one flush)")
	flag.DurationVar(&c.flowsWindow, "flows-window", 60*time.Second, "sensor window during the many-flows phase")
	flag.Float64Var(&c.flowsRate, "flows-rate", 100000, "rate the many-flows capture is sent at, packets/s")
	flag.IntVar(&c.flows, "flows", 1000000, "distinct flows in the many-flows capture (for the report)")
	flag.IntVar(&c.maxFlows, "max-flows", 1200000, "sensor --max-flows in the many-flows phase")
	flag.Float64Var(&c.flushRate, "flush-rate", 100000, "packets/s of the big capture sent across the many-flows window's flush (0: none)")
	flag.IntVar(&c.batch, "batch", 64, "sender frames per sendmmsg")
	flag.StringVar(&c.bufferBytes, "buffer-bytes", "", "sensor --buffer-bytes (default: the sensor's)")
	flag.StringVar(&c.queuePackets, "queue-packets", "", "sensor --queue-packets (default: the sensor's)")
	flag.StringVar(&c.extra, "sensor-args", "", "more sensor flags, space-separated")
	flag.DurationVar(&c.timeout, "timeout", 40*time.Minute, "give up after this long")
	flag.Parse()
	c.methods = strings.Split(methods, ",")
	def := func(p *string, name string) {
		if *p == "" {
			*p = filepath.Join(c.work, name)
		}
	}
	def(&c.pki, "pki")
	def(&c.sensorBin, "sensor")
	def(&c.collectorBin, "collector")
	def(&c.senderBin, "sender")
	def(&c.capture, "big.pcap")
	def(&c.flowsCapture, "flows.pcap")
	for _, p := range []*string{&c.work, &c.pki, &c.sensorBin, &c.collectorBin, &c.senderBin, &c.capture, &c.flowsCapture} {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: c, ctx: ctx}
	defer b.cleanup()
	if err := b.run(); err != nil {
		b.cleanup()
		fmt.Fprintln(os.Stderr, "sensorbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	cfg   config
	ctx   context.Context
	procs []*proc
}

// proc is a child process with its log file.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func (b *bench) start(logName string, name string, args ...string) (*proc, error) {
	path := filepath.Join(b.cfg.work, "logs", logName)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: path}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	b.procs = append(b.procs, p)
	return p, nil
}

// stop sends SIGTERM and waits, killing after d.
func (p *proc) stop(d time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (b *bench) cleanup() {
	for _, p := range b.procs {
		p.stop(5 * time.Second)
	}
	b.procs = nil
}

func (b *bench) sleep(d time.Duration) error {
	select {
	case <-b.ctx.Done():
		return b.ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (b *bench) waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		if err := b.sleep(100 * time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// startCollector starts a collector with a fresh data directory and the given window.
func (b *bench) startCollector(name string, window time.Duration) (*proc, error) {
	data := filepath.Join(b.cfg.work, "data-"+name)
	_ = os.RemoveAll(data)
	p, err := b.start("collector-"+name+".log", b.cfg.collectorBin, "--listen", b.cfg.collectorAddr,
		"--metrics-listen", "", "--data-dir", data, "--window", window.String(), "--grace", "5s",
		"--cert", filepath.Join(b.cfg.pki, "collector-bench.pem"), "--key", filepath.Join(b.cfg.pki, "collector-bench-key.pem"),
		"--ca", filepath.Join(b.cfg.pki, "ca.pem"))
	if err != nil {
		return nil, err
	}
	err = b.waitFor(20*time.Second, "the collector", func() bool { return fileHas(p.log, "collector listening") })
	return p, err
}

// sensor is a running sensor process.
type sensor struct {
	*proc
	pid int
	url string
}

func (b *bench) startSensor(name, method string, window time.Duration, extra ...string) (*sensor, error) {
	spool := filepath.Join(b.cfg.work, "spool-"+name)
	_ = os.RemoveAll(spool)
	args := []string{"netns", "exec", b.cfg.nsSensor, b.cfg.sensorBin, "--collector", b.cfg.collectorAddr,
		"--interface", b.cfg.iface, "--capture", method,
		"--cert", filepath.Join(b.cfg.pki, "sensor-bench-sensor.pem"), "--key", filepath.Join(b.cfg.pki, "sensor-bench-sensor-key.pem"),
		"--ca", filepath.Join(b.cfg.pki, "ca.pem"), "--spool-dir", spool, "--window", window.String(),
		"--metrics-listen", b.cfg.metricsAddr}
	if b.cfg.bufferBytes != "" {
		args = append(args, "--buffer-bytes", b.cfg.bufferBytes)
	}
	if b.cfg.queuePackets != "" {
		args = append(args, "--queue-packets", b.cfg.queuePackets)
	}
	args = append(args, strings.Fields(b.cfg.extra)...)
	args = append(args, extra...)
	p, err := b.start("sensor-"+name+".log", "ip", args...)
	if err != nil {
		return nil, err
	}
	s := &sensor{proc: p, pid: p.cmd.Process.Pid, url: "http://" + b.cfg.metricsAddr + "/metrics"}
	err = b.waitFor(30*time.Second, "the sensor to connect to the collector", func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		m, err := scrape(s.url)
		return err == nil && m["flowfleet_sensor_connected"] == 1
	})
	select {
	case <-p.done:
		return nil, fmt.Errorf("the sensor exited; see %s", p.log)
	default:
	}
	if err != nil {
		return nil, err
	}
	// ip netns exec execs the sensor, so the process is the sensor itself.
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.pid)); strings.TrimSpace(string(comm)) != filepath.Base(b.cfg.sensorBin) {
		return nil, fmt.Errorf("process %d is %q, not the sensor", s.pid, strings.TrimSpace(string(comm)))
	}
	return s, nil
}

// metrics are one scrape: sample name with labels → value.
type metrics map[string]float64

func scrape(url string) (metrics, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

func (m metrics) kernel() float64 { return m[`flowfleet_sensor_packet_drops_total{reason="kernel"}`] }
func (m metrics) queue() float64  { return m[`flowfleet_sensor_packet_drops_total{reason="queue"}`] }
func (m metrics) late() float64   { return m[`flowfleet_sensor_packet_drops_total{reason="late"}`] }
func (m metrics) packets() float64 {
	return m["flowfleet_sensor_packets_total"]
}

// cpuSeconds returns utime+stime of a process from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseFloat(f[11], 64) // field 14, utime
	k, _ := strconv.ParseFloat(f[12], 64) // field 15, stime
	return (u + k) / 100, nil             // USER_HZ is 100 on Linux
}

// status returns a /proc/PID/status field in KiB (VmHWM, VmRSS).
func status(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

type sendResult struct {
	Sent    int64   `json:"sent"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	Errors  int64   `json:"errors"`
	CPU     float64 `json:"cpu"`
}

// machineIdle returns the CPU seconds every CPU spent idle (idle and iowait), from /proc/stat.
func machineIdle() float64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 {
		return 0
	}
	idle, _ := strconv.ParseFloat(f[4], 64)
	iowait, _ := strconv.ParseFloat(f[5], 64)
	return (idle + iowait) / 100
}

// send runs the sender in its namespace; onStart is called when it starts sending.
func (b *bench) send(file string, rate float64, args []string, onStart func()) (sendResult, error) {
	full := append([]string{"netns", "exec", b.cfg.nsSend, b.cfg.senderBin, "-i", b.cfg.iface, "-f", file,
		"-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-batch", strconv.Itoa(b.cfg.batch)}, args...)
	cmd := exec.CommandContext(b.ctx, "ip", full...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return sendResult{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return sendResult{}, err
	}
	var res sendResult
	var perr error
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "sending":
			onStart()
		case strings.HasPrefix(line, "{"):
			perr = json.Unmarshal([]byte(line), &res)
		}
	}
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("sender: %v: %s", err, stderr.String())
	}
	if perr != nil || res.Sent == 0 {
		return res, fmt.Errorf("sender: no result (%v): %s", perr, stderr.String())
	}
	return res, nil
}

// drain waits until the sensor has taken every queued packet and its kernel drop counters are fresh.
func (b *bench) drain(s *sensor) (metrics, error) {
	if err := b.sleep(1500 * time.Millisecond); err != nil { // drop counters are read once a second
		return nil, err
	}
	var last metrics
	stable := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		m, err := scrape(s.url)
		if err != nil { // a sensor busy flushing may answer late; try again until the deadline
			if err := b.sleep(300 * time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		if last != nil && m.packets() == last.packets() && m["flowfleet_sensor_queue_packets"] == 0 {
			stable++
			if stable >= 2 {
				return m, nil
			}
		} else {
			stable = 0
		}
		last = m
		if err := b.sleep(300 * time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the sensor did not drain its queue within 60 s")
}

// step is one rate of a sweep.
type step struct {
	Target, Rate        float64 // asked for, sent at
	Sent, Seen          int64   // sent; reached the sensor (processed + dropped by it)
	Kernel, Queue, Late int64
	CPU                 float64 // sensor CPU seconds from the first packet to drained
	Seconds             float64 // sending time
	// SenderCPU is the sender's CPU use, in cores (with the kernel's packet path, which runs in its
	// context); Idle is the machine's idle CPU meanwhile, in cores: how much room was left.
	SenderCPU, Idle float64
}

func (s step) drops() int64 { return s.Kernel + s.Queue }

// cores is the sensor's CPU use while it kept up, in cores; per100k that per 100,000 packets/s.
func (s step) cores() float64   { return s.CPU / s.Seconds }
func (s step) per100k() float64 { return s.CPU * 1e5 / float64(s.Sent) }

type sweep struct {
	Method    string
	Steps     []step
	Best      *step  // highest rate with zero drops, every lower rate also without drops
	StopCause string // why the sweep ended
}

func (b *bench) sweep(method string) (*sweep, error) {
	col, err := b.startCollector("sweep-"+method, b.cfg.window)
	if err != nil {
		return nil, err
	}
	defer col.stop(20 * time.Second)
	s, err := b.startSensor("sweep-"+method, method, b.cfg.window)
	if err != nil {
		return nil, err
	}
	defer s.stop(30 * time.Second)
	sw := &sweep{Method: method, StopCause: "reached -max"}
	failed, everFailed := 0, false
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n%s: %s, %s per rate, sensor window %s; load average before: %s\n", method, filepath.Base(b.cfg.capture), b.cfg.stepDur,
		b.cfg.window, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("%10s %10s %11s %11s %9s %9s %8s %12s %8s %8s\n", "target/s", "sent/s", "sent", "seen", "kernel", "queue", "cores",
		"core/100kpps", "sender", "idle")
	for rate := b.cfg.start; rate <= b.cfg.max; rate += b.cfg.step {
		m0, err := scrape(s.url)
		if err != nil {
			return nil, err
		}
		var c0, idle0 float64
		var t0 time.Time
		res, err := b.send(b.cfg.capture, rate, []string{"-duration", b.cfg.stepDur.String()}, func() {
			c0, _ = cpuSeconds(s.pid)
			idle0, t0 = machineIdle(), time.Now()
		})
		if err != nil {
			return nil, err
		}
		m1, err := b.drain(s)
		if err != nil {
			return nil, err
		}
		c1, err := cpuSeconds(s.pid)
		if err != nil {
			return nil, fmt.Errorf("sensor: %w (did it exit? see %s)", err, s.log)
		}
		idle := (machineIdle() - idle0) / time.Since(t0).Seconds()
		st := step{Target: rate, Rate: res.Rate, Sent: res.Sent, Seconds: res.Seconds, CPU: c1 - c0,
			SenderCPU: res.CPU / res.Seconds, Idle: idle,
			Kernel: int64(m1.kernel() - m0.kernel()), Queue: int64(m1.queue() - m0.queue()), Late: int64(m1.late() - m0.late())}
		st.Seen = int64(m1.packets()-m0.packets()) + st.Kernel + st.Queue
		sw.Steps = append(sw.Steps, st)
		fmt.Printf("%10.0f %10.0f %11d %11d %9d %9d %8.2f %11.1f%% %8.2f %8.2f\n", st.Target, st.Rate, st.Sent, st.Seen, st.Kernel, st.Queue,
			st.cores(), 100*st.per100k(), st.SenderCPU, st.Idle)
		if st.drops() == 0 && !everFailed {
			last := sw.Steps[len(sw.Steps)-1]
			sw.Best = &last
		}
		if st.drops() > 0 {
			failed++
			everFailed = true
			if failed >= b.cfg.failSteps {
				sw.StopCause = fmt.Sprintf("%d steps in a row with drops", failed)
				break
			}
		} else {
			failed = 0
		}
		if res.Rate < 0.97*rate {
			sw.StopCause = fmt.Sprintf("the sender reached only %.0f packets/s", res.Rate)
			break
		}
	}
	return sw, nil
}

// flowsResult is the many-flows phase of one method.
type flowsResult struct {
	Method                 string
	Sent                   int64
	Rate                   float64
	Drops, Evictions       int64
	Exported               int64   // flows the engine flushed at the end of the window
	IdleRSS, HeldRSS, Peak int64   // KiB: before sending, holding the flows, VmHWM after the flush
	Flush                  float64 // seconds the window's flush took, about (±0.2 s)
	BgRate                 float64 // rate of the traffic sent across the flush
	BgDrops                int64   // and how much of it was dropped
}

func (b *bench) manyFlows(method string) (*flowsResult, error) {
	col, err := b.startCollector("flows-"+method, b.cfg.flowsWindow)
	if err != nil {
		return nil, err
	}
	defer col.stop(30 * time.Second)
	s, err := b.startSensor("flows-"+method, method, b.cfg.flowsWindow, "--max-flows", strconv.Itoa(b.cfg.maxFlows))
	if err != nil {
		return nil, err
	}
	defer s.stop(60 * time.Second)
	// Every flow must fall in one window: start just after a boundary unless enough of it is left.
	w := b.cfg.flowsWindow
	need := time.Duration(float64(b.cfg.flows)/b.cfg.flowsRate*float64(time.Second)) + 10*time.Second
	now := time.Now()
	into := now.Sub(now.Truncate(w))
	if into < time.Second || w-into < need {
		fmt.Printf("\n%s: waiting %s for the next %s window\n", method, (w - into + time.Second).Round(time.Second), w)
		if err := b.sleep(w - into + time.Second); err != nil {
			return nil, err
		}
	}
	windowEnd := time.Now().Truncate(w).Add(w)
	r := &flowsResult{Method: method, IdleRSS: status(s.pid, "VmRSS")}
	m0, err := scrape(s.url)
	if err != nil {
		return nil, err
	}
	res, err := b.send(b.cfg.flowsCapture, b.cfg.flowsRate, []string{"-loops", "1"}, func() {})
	if err != nil {
		return nil, err
	}
	m1, err := b.drain(s)
	if err != nil {
		return nil, err
	}
	if time.Now().After(windowEnd) {
		return nil, errors.New("the many-flows capture did not fit in one window: raise -flows-rate or -flows-window")
	}
	r.Sent, r.Rate = res.Sent, res.Rate
	r.HeldRSS = status(s.pid, "VmRSS")
	r.Drops = int64(m1.kernel() - m0.kernel() + m1.queue() - m0.queue())
	fmt.Printf("%s: sent %d packets at %.0f/s; %d dropped; VmRSS %d MiB holding the flows; waiting for the window flush\n",
		method, r.Sent, r.Rate, r.Drops, r.HeldRSS>>10)
	// With background traffic its first packet after the window's end flushes the window; without,
	// the wall clock does, 2 s after the end, on the engine's next 250 ms tick.
	flushStart := windowEnd.Add(2*time.Second + 125*time.Millisecond)
	type bgResult struct {
		res sendResult
		err error
	}
	var bg chan bgResult
	if b.cfg.flushRate > 0 {
		flushStart = windowEnd
		if err := b.sleep(time.Until(windowEnd.Add(-3 * time.Second))); err != nil {
			return nil, err
		}
		bg = make(chan bgResult, 1)
		d := time.Until(windowEnd.Add(20 * time.Second)).Round(time.Second)
		go func() {
			res, err := b.send(b.cfg.capture, b.cfg.flushRate, []string{"-duration", d.String()}, func() {})
			bg <- bgResult{res, err}
		}()
	} else if err := b.sleep(time.Until(windowEnd.Add(2 * time.Second))); err != nil {
		return nil, err
	}
	// Done when at least every flow that was not dropped is exported and the count stays put.
	var m2 metrics
	var done time.Time // when the last flow was seen exported
	expect := m0["flowfleet_sensor_flows_exported_total"] + float64(int64(b.cfg.flows)-r.Drops)
	err = b.waitFor(180*time.Second, "the window flush", func() bool {
		m, err := scrape(s.url)
		if err != nil || m["flowfleet_sensor_windows_flushed_total"] <= m1["flowfleet_sensor_windows_flushed_total"] {
			return false
		}
		if m2 != nil && m["flowfleet_sensor_flows_exported_total"] == m2["flowfleet_sensor_flows_exported_total"] {
			return m["flowfleet_sensor_flows_exported_total"] >= expect && time.Since(done) > time.Second
		}
		m2, done = m, time.Now()
		return false
	})
	if err != nil {
		return nil, err
	}
	r.Flush = done.Sub(flushStart).Seconds()
	r.Exported = int64(m2["flowfleet_sensor_flows_exported_total"] - m0["flowfleet_sensor_flows_exported_total"])
	r.Evictions = int64(m2["flowfleet_sensor_evictions_total"] - m0["flowfleet_sensor_evictions_total"])
	r.Peak = status(s.pid, "VmHWM")
	fmt.Printf("%s: %d flows exported at the window's end (in about %.1f s), %d evicted early; VmHWM %d MiB\n", method, r.Exported,
		r.Flush, r.Evictions, r.Peak>>10)
	if bg != nil {
		x := <-bg
		if x.err != nil {
			return nil, x.err
		}
		m3, err := b.drain(s)
		if err != nil {
			return nil, err
		}
		r.BgRate = x.res.Rate
		r.BgDrops = int64(m3.kernel() - m1.kernel() + m3.queue() - m1.queue())
		fmt.Printf("%s: %d of %d packets sent at %.0f/s across the flush were dropped (kernel %.0f, queue %.0f)\n", method, r.BgDrops,
			x.res.Sent, x.res.Rate, m3.kernel()-m1.kernel(), m3.queue()-m1.queue())
	}
	return r, nil
}

func (b *bench) run() error {
	for _, p := range []string{b.cfg.sensorBin, b.cfg.collectorBin, b.cfg.senderBin, b.cfg.capture, b.cfg.flowsCapture,
		filepath.Join(b.cfg.pki, "ca.pem")} {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	var sweeps []*sweep
	var flows []*flowsResult
	for _, m := range b.cfg.methods {
		sw, err := b.sweep(m)
		if err != nil {
			return fmt.Errorf("%s sweep: %w", m, err)
		}
		sweeps = append(sweeps, sw)
		b.cleanup()
		if b.cfg.noFlows {
			flows = append(flows, &flowsResult{Method: m})
			continue
		}
		fr, err := b.manyFlows(m)
		if err != nil {
			return fmt.Errorf("%s many flows: %w", m, err)
		}
		flows = append(flows, fr)
		b.cleanup()
	}
	report(os.Stdout, b.cfg, sweeps, flows)
	return nil
}

func report(w io.Writer, c config, sweeps []*sweep, flows []*flowsResult) {
	fmt.Fprintf(w, "\n| capture | highest rate with zero drops | sensor CPU per 100k packets/s | sweep ended | flows held (evicted) | drops | VmRSS idle | VmRSS holding them | VmHWM | flush | dropped across the flush |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, sw := range sweeps {
		best, cpu := "none", "–"
		if sw.Best != nil {
			best = fmt.Sprintf("%.0f packets/s", sw.Best.Rate)
			cpu = fmt.Sprintf("%.0f %% of a core", 100*sw.Best.per100k())
		}
		fr := flows[i]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d (%d) | %d | %d MiB | %d MiB | %d MiB | %.1f s | %d at %.0f packets/s |\n", sw.Method, best, cpu,
			sw.StopCause, fr.Exported, fr.Evictions, fr.Drops, fr.IdleRSS>>10, fr.HeldRSS>>10, fr.Peak>>10, fr.Flush, fr.BgDrops, fr.BgRate)
	}
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}
