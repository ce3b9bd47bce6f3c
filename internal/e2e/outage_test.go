package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
	"github.com/flowfleet/flowfleet/pkg/formats/convert"
)

// The outage test's hosts: ffo-sensor (10.94.1.1, the client) and ffo-peer (10.94.1.2, the server)
// joined by ffo-data, the link the sensor captures; and ffo-coll, the collector's namespace (10.94.0.1),
// joined to ffo-sensor (10.94.0.2) by a control link. Nothing uses the root namespace's network.
const (
	outageHelperEnv = "FLOWFLEET_OUTAGE_HELPER" // "server", "client:<unix seconds to stop at>" or "get:<url>"
	outagePeerIP    = "10.94.1.2"
	outageWindow    = 10
)

func outageNetns(t *testing.T) {
	t.Helper()
	namespaces := []string{"ffo-sensor", "ffo-peer", "ffo-coll"}
	cleanup := func() {
		for _, ns := range namespaces {
			_ = runQuiet("ip", "netns", "del", ns)
		}
	}
	cleanup()
	t.Cleanup(cleanup)
	for _, ns := range namespaces {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "ffo-data", "netns", "ffo-sensor", "type", "veth", "peer", "name", "ffo-data", "netns", "ffo-peer")
	run(t, "ip", "-n", "ffo-sensor", "addr", "add", "10.94.1.1/24", "dev", "ffo-data")
	run(t, "ip", "-n", "ffo-peer", "addr", "add", outagePeerIP+"/24", "dev", "ffo-data")
	run(t, "ip", "link", "add", "ffo-ctl", "netns", "ffo-coll", "type", "veth", "peer", "name", "ffo-ctl", "netns", "ffo-sensor")
	run(t, "ip", "-n", "ffo-coll", "addr", "add", "10.94.0.1/24", "dev", "ffo-ctl")
	run(t, "ip", "-n", "ffo-sensor", "addr", "add", "10.94.0.2/24", "dev", "ffo-ctl")
	for _, l := range [][2]string{{"ffo-sensor", "ffo-data"}, {"ffo-peer", "ffo-data"}, {"ffo-coll", "ffo-ctl"}, {"ffo-sensor", "ffo-ctl"}} {
		run(t, "ip", "-n", l[0], "link", "set", l[1], "up")
	}
}

// TestOutageHelperProcess is not a test: re-executed with FLOWFLEET_OUTAGE_HELPER set, the test binary is
// the outage test's traffic. "server" echoes TCP on :8080 and UDP on :7777 until killed; "client:T" makes
// a TCP connection and a UDP exchange (new ports each time) to the server about ten times a second until
// the Unix time T, pausing around window boundaries so that every exchange falls inside one window;
// "get:URL" prints the body of an HTTP GET (a collector's metrics, from inside its namespace).
func TestOutageHelperProcess(t *testing.T) {
	mode := os.Getenv(outageHelperEnv)
	switch {
	case mode == "":
		t.Skip("helper process only")
	case mode == "server":
		outageServer()
	case strings.HasPrefix(mode, "client:"):
		until, err := strconv.ParseInt(strings.TrimPrefix(mode, "client:"), 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		outageClient(time.Unix(until, 0))
	case strings.HasPrefix(mode, "get:"):
		resp, err := http.Get(strings.TrimPrefix(mode, "get:"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_, _ = io.Copy(os.Stdout, resp.Body)
		resp.Body.Close()
	}
	os.Exit(0)
}

func outageServer() {
	tl, err := net.Listen("tcp", outagePeerIP+":8080")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ul, err := net.ListenPacket("udp", outagePeerIP+":7777")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, addr, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ul.WriteTo(buf[:n], addr)
		}
	}()
	fmt.Println("serving")
	for {
		c, err := tl.Accept()
		if err != nil {
			os.Exit(3)
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}

func outageClient(until time.Time) {
	const w = outageWindow * time.Second
	payload := []byte(strings.Repeat("flowfleet outage test ", 40))
	for i := 0; time.Now().Before(until); i++ {
		now := time.Now()
		if into := now.Sub(now.Truncate(w)); into < 150*time.Millisecond || into > w-250*time.Millisecond {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n := 50 + i%800
		if i%2 == 0 {
			c, err := net.DialTimeout("tcp", outagePeerIP+":8080", time.Second)
			if err != nil {
				fmt.Fprintln(os.Stderr, "tcp:", err)
				continue
			}
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(payload[:n])
			_, _ = io.ReadFull(c, make([]byte, n))
			c.Close()
		} else {
			c, err := net.Dial("udp", outagePeerIP+":7777")
			if err != nil {
				fmt.Fprintln(os.Stderr, "udp:", err)
				continue
			}
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(payload[:n])
			_, _ = c.Read(make([]byte, 2048))
			c.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With traffic flowing all along, the collector is killed (SIGKILL) for longer than a window and
// restarted on the same data directory: every flow still arrives exactly once. Window by window, the
// samples' flows together equal `flowctl convert` (with the sensor's options) on a tcpdump capture of the
// same interface — same flows, same packet and byte counts — no flow is in two samples of a window, and
// no window is missing. The sensor reconnects on its own and its spool drains.
func TestOutageCollectorKilledFlowsArriveOnce(t *testing.T) {
	needRoot(t)
	if _, err := execLookPath("tcpdump"); err != nil {
		t.Skip("skipping: tcpdump is not installed; scripts/setup.sh installs it")
	}
	bin := binaries(t)
	dir := t.TempDir()
	outageNetns(t)
	pkiDir := filepath.Join(dir, "pki")
	flowctl := filepath.Join(bin, "flowctl")
	run(t, flowctl, "certs", "init", "--dir", pkiDir)
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "collector", "--name", "c1", "--ip", "10.94.0.1")
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "sensor", "--name", "ffo-sensor")

	const addr = "10.94.0.1:17543"
	dataDir := filepath.Join(dir, "data")
	const metricsAddr = "127.0.0.1:19466" // in ffo-coll
	startCollector := func(logName string) *process {
		t.Helper()
		p := start(t, filepath.Join(dir, logName), "ip", "netns", "exec", "ffo-coll", filepath.Join(bin, "collector"),
			"--listen", addr, "--metrics-listen", metricsAddr, "--data-dir", dataDir,
			"--window", fmt.Sprintf("%ds", outageWindow), "--grace", "3s",
			"--cert", filepath.Join(pkiDir, "collector-c1.pem"), "--key", filepath.Join(pkiDir, "collector-c1-key.pem"),
			"--ca", filepath.Join(pkiDir, "ca.pem"))
		waitFor(t, 20*time.Second, "the collector", func() bool { return fileContains(p.log, "collector listening") })
		return p
	}
	collector := startCollector("collector.log")
	startEnv(t, filepath.Join(dir, "server.log"), []string{outageHelperEnv + "=server"},
		"ip", "netns", "exec", "ffo-peer", os.Args[0], "-test.run=^TestOutageHelperProcess$")
	pcapPath := filepath.Join(dir, "capture.pcap")
	dump := start(t, filepath.Join(dir, "tcpdump.log"), "ip", "netns", "exec", "ffo-sensor", "tcpdump", "-i", "ffo-data",
		"-s", "65535", "-U", "-Z", "root", "-w", pcapPath)
	spoolDir := filepath.Join(dir, "spool")
	sensorLog := filepath.Join(dir, "sensor.log")
	start(t, sensorLog, "ip", "netns", "exec", "ffo-sensor", filepath.Join(bin, "sensor"), "--collector", addr,
		"--interface", "ffo-data", "--cert", filepath.Join(pkiDir, "sensor-ffo-sensor.pem"),
		"--key", filepath.Join(pkiDir, "sensor-ffo-sensor-key.pem"), "--ca", filepath.Join(pkiDir, "ca.pem"),
		"--spool-dir", spoolDir, "--window", fmt.Sprintf("%ds", outageWindow), "--metrics-listen", "")
	waitFor(t, 20*time.Second, "tcpdump, the server and the sensor", func() bool {
		return fileContains(filepath.Join(dir, "tcpdump.log"), "listening on") && fileContains(filepath.Join(dir, "server.log"), "serving") &&
			strings.Contains(readFile(sensorLog), "connected to collector")
	})

	// Traffic from the start of the next window for four windows. The collector is killed (SIGKILL) the
	// moment the sensor spools the first window's batch, so that batch is in flight — not yet received,
	// or stored and not acknowledged — and restarted 15 s later, in the third window.
	const w = outageWindow * time.Second
	b0 := time.Now().Truncate(w).Add(w)
	time.Sleep(time.Until(b0))
	client := startEnv(t, filepath.Join(dir, "client.log"), []string{fmt.Sprintf("%s=client:%d", outageHelperEnv, b0.Add(4*w).Unix())},
		"ip", "netns", "exec", "ffo-sensor", os.Args[0], "-test.run=^TestOutageHelperProcess$")

	time.Sleep(time.Until(b0.Add(w)))
	if comm := strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/comm", collector.cmd.Process.Pid))); comm != "collector" {
		t.Fatalf("process %d is %q, not the collector", collector.cmd.Process.Pid, comm)
	}
	for deadline := time.Now().Add(3 * time.Second); len(spooled(t, spoolDir)) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := collector.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = collector.cmd.Wait()
	killedAt := time.Now()
	t.Logf("collector killed at +%.3fs into the traffic, %d batches in the sensor's spool", killedAt.Sub(b0).Seconds(),
		len(spooled(t, spoolDir)))

	time.Sleep(time.Until(killedAt.Add(15*time.Second - 500*time.Millisecond)))
	if n := len(spooled(t, spoolDir)); n == 0 {
		t.Errorf("no batch in the spool after %s without a collector: the windows flushed meanwhile went nowhere",
			time.Since(killedAt).Round(time.Second))
	} else {
		t.Logf("%d batches in the spool while the collector is down", n)
	}
	time.Sleep(time.Until(killedAt.Add(15 * time.Second)))
	restarted := startCollector("collector-restarted.log")
	t.Logf("collector restarted at +%.1fs", time.Since(b0).Seconds())

	waitFor(t, 4*w, "the traffic to end", client.exited)
	windows := []int64{}
	for i := range 4 {
		windows = append(windows, b0.Add(time.Duration(i)*w).Unix())
	}
	samplesDir := filepath.Join(dataDir, "samples")
	waitFor(t, 40*time.Second, "a sample for every window of traffic and an empty spool", func() bool {
		got := samplesByWindow(t, samplesDir)
		for _, ws := range windows {
			if len(got[ws]) == 0 {
				return false
			}
		}
		return len(spooled(t, spoolDir)) == 0
	})
	time.Sleep(time.Second) // a revision would follow within the collector's close interval
	dump.stop()

	// The sensor noticed the outage and came back by itself.
	log := readFile(sensorLog)
	if !strings.Contains(log, "collector stream ended; reconnecting") {
		t.Errorf("the sensor did not log a lost stream and reconnection")
	}
	if n := strings.Count(log, "connected to collector"); n < 2 {
		t.Errorf("the sensor connected %d times, want at least 2 (before and after the outage)", n)
	}
	// Which path the batch in flight at the kill took: lost with the collector and replayed, or stored,
	// then replayed and acknowledged as a duplicate (both must give the same samples).
	first := regexp.MustCompile(`sample written.*window_start=` + strconv.FormatInt(b0.Unix(), 10))
	get := exec.Command("ip", "netns", "exec", "ffo-coll", os.Args[0], "-test.run=^TestOutageHelperProcess$")
	get.Env = append(os.Environ(), outageHelperEnv+"=get:http://"+metricsAddr+"/metrics")
	out, _ := get.Output()
	dups := "no"
	if m := regexp.MustCompile(`(?m)^flowfleet_collector_batches_total\{outcome="duplicate"\} (\d+)`).FindStringSubmatch(string(out)); m != nil {
		dups = m[1]
	} else if !strings.Contains(string(out), "flowfleet_collector_batches_total") {
		dups = "(metrics unavailable)"
	}
	t.Logf("the first window's sample was written by the %s collector; the restarted collector acknowledged %s duplicate batches",
		map[bool]string{true: "first", false: "restarted"}[first.MatchString(readFile(collector.log))], dups)
	// The window flushed during the outage and the next one were written by the restarted collector.
	for _, ws := range []int64{b0.Add(w).Unix(), b0.Add(2 * w).Unix()} {
		if !regexp.MustCompile(`sample written.*window_start=` + strconv.FormatInt(ws, 10)).MatchString(readFile(restarted.log)) {
			t.Errorf("the restarted collector did not write the sample of window %d", ws)
		}
	}
	if left := spooled(t, spoolDir); len(left) > 0 {
		t.Errorf("the spool still holds %d batches: %v", len(left), left)
	}

	// Window by window: the samples' flows together equal convert's flows on the second capture.
	samples := samplesByWindow(t, samplesDir)
	cutDir := filepath.Join(dir, "cut")
	if err := os.MkdirAll(cutDir, 0o755); err != nil {
		t.Fatal(err)
	}
	wantWindows := map[int64]bool{}
	lo, hi := captureSpan(t, pcapPath)
	for ws := lo / outageWindow * outageWindow; ws <= hi; ws += outageWindow {
		cut := filepath.Join(cutDir, fmt.Sprintf("w%d.pcap", ws))
		if cutCapture(t, pcapPath, cut, ws, ws+outageWindow) == 0 {
			continue
		}
		res, err := convert.File(context.Background(), cut, convert.Options{OutDir: cutDir,
			Flow: flow.Options{SessionNames: true, DecodeVLAN: true}})
		if err != nil {
			t.Fatal(err)
		}
		want := decodeFile(t, res.Output).Flows
		if len(want) == 0 {
			continue
		}
		wantWindows[ws] = true
		compareWindow(t, ws, samples[ws], want)
	}
	for _, ws := range windows {
		if !wantWindows[ws] {
			t.Errorf("window %d: the capture has no flow in it; the traffic did not run as planned", ws)
		}
	}
	for ws, files := range samples {
		if !wantWindows[ws] {
			t.Errorf("window %d: samples %v, but the capture has no flow in that window", ws, files)
		}
	}
}

// compareWindow checks one window's samples against convert's flows: the union of the samples' flows,
// keyed by source, destination and protocol, has every flow of convert's once, with the same packet and
// byte counts and destination name source, and nothing else.
func compareWindow(t *testing.T, ws int64, files []string, want []bayseflow.Row) {
	t.Helper()
	if len(files) == 0 {
		t.Errorf("window %d: no sample, but convert finds %d flows in the capture", ws, len(want))
		return
	}
	key := func(r bayseflow.Row) string { return r.Src + " " + r.Dst + " " + r.ProtocolInformation }
	got := map[string]bayseflow.Row{}
	from := map[string]string{}
	total := 0
	for _, f := range files {
		for _, r := range decodeFile(t, f).Flows {
			total++
			k := key(r)
			if prev, dup := from[k]; dup {
				t.Errorf("window %d: flow %s is in %s and again in %s", ws, k, filepath.Base(prev), filepath.Base(f))
				continue
			}
			got[k], from[k] = r, f
		}
	}
	counts := func(r bayseflow.Row) string {
		return fmt.Sprintf("%s pkts %s/%s bytes %s/%s (%s)", key(r), r.SrcPkts, r.DstPkts, r.SrcBytes, r.DstBytes, r.DestinationNameSource)
	}
	missing, extra, differ := 0, 0, 0
	for _, w := range want {
		g, ok := got[key(w)]
		switch {
		case !ok:
			if missing++; missing <= 5 {
				t.Errorf("window %d: flow %s is not in any sample", ws, counts(w))
			}
		case counts(g) != counts(w):
			if differ++; differ <= 5 {
				t.Errorf("window %d: flow differs:\n got %s\nwant %s", ws, counts(g), counts(w))
			}
		}
		delete(got, key(w))
	}
	for _, g := range got {
		if extra++; extra <= 5 {
			t.Errorf("window %d: flow %s (in %s) is not in convert's output", ws, counts(g), filepath.Base(from[key(g)]))
		}
	}
	t.Logf("window %d: %d samples, %d flows; convert %d flows; %d missing, %d extra, %d differ", ws, len(files), total,
		len(want), missing, extra, differ)
}

var sampleName = regexp.MustCompile(`^ffo-sensor_(\d+)(_r\d+)?\.bf$`)

// samplesByWindow lists the sample files (every revision) by window start.
func samplesByWindow(t *testing.T, dir string) map[int64][]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[int64][]string{}
	for _, e := range ents {
		m := sampleName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		ws, _ := strconv.ParseInt(m[1], 10, 64)
		out[ws] = append(out[ws], filepath.Join(dir, e.Name()))
	}
	for _, files := range out {
		sort.Strings(files)
	}
	return out
}

// spooled lists the batch files in a sensor's spool.
func spooled(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.batch"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// captureSpan returns the seconds of the first and last frame of a capture.
func captureSpan(t *testing.T, path string) (lo, hi int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	lo = -1
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if s := ci.Timestamp.Unix(); lo < 0 {
			lo, hi = s, s
		} else {
			hi = s
		}
	}
	if lo < 0 {
		t.Fatal("the capture is empty")
	}
	return lo, hi
}

// helper is a re-executed test binary; done is closed when it exits.
type helper struct {
	*process
	done chan struct{}
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, logPath string, env []string, name string, args ...string) *helper {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{process: &process{cmd: cmd, log: logPath}, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = cmd.Process.Kill()
			<-h.done
		}
		f.Close()
		if t.Failed() {
			t.Logf("--- %s ---\n%s", filepath.Base(logPath), tail([]byte(readFile(logPath)), 2000))
		}
	})
	return h
}

func (h *helper) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}
