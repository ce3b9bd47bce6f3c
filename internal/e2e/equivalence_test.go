package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
	"github.com/flowfleet/flowfleet/pkg/formats/convert"
)

// netnsPair makes the test's hosts: ffe-sensor (10.98.0.11) and ffe-services (DNS 10.98.0.2, web
// 100.64.1.1) joined by a veth (the link the sensor captures), and a control link from the root
// namespace (10.97.0.1, the collector) to ffe-sensor (10.97.0.2).
func netnsPair(t *testing.T) {
	t.Helper()
	cleanup := func() {
		_ = runQuiet("ip", "link", "del", "ffe-ctl0")
		_ = runQuiet("ip", "netns", "del", "ffe-sensor")
		_ = runQuiet("ip", "netns", "del", "ffe-services")
	}
	cleanup()
	t.Cleanup(cleanup)
	for _, ns := range []string{"ffe-sensor", "ffe-services"} {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "ffe-data", "netns", "ffe-sensor", "type", "veth", "peer", "name", "ffe-data", "netns", "ffe-services")
	run(t, "ip", "-n", "ffe-sensor", "addr", "add", "10.98.0.11/24", "dev", "ffe-data")
	run(t, "ip", "-n", "ffe-services", "addr", "add", "10.98.0.2/24", "dev", "ffe-data")
	run(t, "ip", "-n", "ffe-services", "addr", "add", "100.64.1.1/24", "dev", "ffe-data")
	run(t, "ip", "-n", "ffe-sensor", "link", "set", "ffe-data", "up")
	run(t, "ip", "-n", "ffe-services", "link", "set", "ffe-data", "up")
	run(t, "ip", "-n", "ffe-sensor", "route", "add", "100.64.1.0/24", "via", "10.98.0.2")
	run(t, "ip", "link", "add", "ffe-ctl0", "type", "veth", "peer", "name", "ffe-ctl1", "netns", "ffe-sensor")
	run(t, "ip", "addr", "add", "10.97.0.1/24", "dev", "ffe-ctl0")
	run(t, "ip", "link", "set", "ffe-ctl0", "up")
	run(t, "ip", "-n", "ffe-sensor", "addr", "add", "10.97.0.2/24", "dev", "ffe-ctl1")
	run(t, "ip", "-n", "ffe-sensor", "link", "set", "ffe-ctl1", "up")
}

func runQuiet(name string, args ...string) error {
	return execCommand(name, args...).Run()
}

// A sample the collector writes from a live sensor equals what `flowctl convert` gives on a capture of
// the same interface during the same window, run with the sensor's options (session names, VLAN
// decoding): the strongest end-to-end check the project has (DESIGN.md).
func TestSensorSampleEqualsConvert(t *testing.T) {
	needRoot(t)
	if _, err := execLookPath("tcpdump"); err != nil {
		t.Skip("skipping: tcpdump is not installed; scripts/setup.sh installs it")
	}
	bin := binaries(t)
	dir := t.TempDir()
	netnsPair(t)
	pkiDir := filepath.Join(dir, "pki")
	flowctl := filepath.Join(bin, "flowctl")
	run(t, flowctl, "certs", "init", "--dir", pkiDir)
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "collector", "--name", "c1", "--ip", "10.97.0.1")
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "sensor", "--name", "ffe-sensor")

	const window = 10
	addr := "10.97.0.1:17443"
	start(t, filepath.Join(dir, "collector.log"), filepath.Join(bin, "collector"), "--listen", addr,
		"--metrics-listen", "", "--data-dir", filepath.Join(dir, "data"), "--window", fmt.Sprintf("%ds", window),
		"--grace", "3s", "--cert", filepath.Join(pkiDir, "collector-c1.pem"),
		"--key", filepath.Join(pkiDir, "collector-c1-key.pem"), "--ca", filepath.Join(pkiDir, "ca.pem"))
	waitFor(t, 20*time.Second, "the collector", func() bool { return listening(addr) })
	start(t, filepath.Join(dir, "services.log"), "ip", "netns", "exec", "ffe-services", filepath.Join(bin, "demonet"),
		"serve", "-dns", "10.98.0.2:53", "-web", "100.64.1.1", "-names", "web.e2e.test=100.64.1.1,www.e2e.test=100.64.1.1")
	pcapPath := filepath.Join(dir, "capture.pcap")
	dump := start(t, filepath.Join(dir, "tcpdump.log"), "ip", "netns", "exec", "ffe-sensor", "tcpdump", "-i", "ffe-data",
		"-s", "65535", "-U", "-Z", "root", "-w", pcapPath)
	sensorLog := filepath.Join(dir, "sensor.log")
	start(t, sensorLog, "ip", "netns", "exec", "ffe-sensor", filepath.Join(bin, "sensor"), "--collector", addr,
		"--interface", "ffe-data", "--cert", filepath.Join(pkiDir, "sensor-ffe-sensor.pem"),
		"--key", filepath.Join(pkiDir, "sensor-ffe-sensor-key.pem"), "--ca", filepath.Join(pkiDir, "ca.pem"),
		"--spool-dir", filepath.Join(dir, "spool"), "--window", fmt.Sprintf("%ds", window), "--metrics-listen", "")
	waitFor(t, 20*time.Second, "tcpdump and the sensor to capture", func() bool {
		return fileContains(filepath.Join(dir, "tcpdump.log"), "listening on") && strings.Contains(readFile(sensorLog), "connected")
	})

	// Traffic inside one window: wait for the start of the next one.
	now := time.Now()
	next := now.Truncate(window * time.Second).Add(window*time.Second + 300*time.Millisecond)
	time.Sleep(time.Until(next))
	ws := next.Unix() / window * window
	run(t, "ip", "netns", "exec", "ffe-sensor", filepath.Join(bin, "demonet"), "traffic", "-dns", "10.98.0.2:53",
		"-names", "web.e2e.test,www.e2e.test", "-rounds", "2")
	run(t, "ip", "netns", "exec", "ffe-sensor", "ping", "-c", "2", "-i", "0.2", "-W", "1", "100.64.1.1")
	run(t, "ip", "netns", "exec", "ffe-sensor", "sh", "-c", "echo hello > /dev/udp/100.64.1.1/9 || true")
	if time.Now().Unix()/window*window != ws {
		t.Fatalf("the traffic took longer than a window (%ds); the comparison needs it in one window", window)
	}

	sampleFile := filepath.Join(dir, "data", "samples", fmt.Sprintf("ffe-sensor_%d.bf", ws))
	waitFor(t, 40*time.Second, "the window's sample", func() bool { _, err := os.Stat(sampleFile); return err == nil })
	time.Sleep(500 * time.Millisecond)
	dump.stop()

	// The second capture, cut to the window, through flowctl convert's code with the sensor's options.
	cut := filepath.Join(dir, "window.pcap")
	frames := cutCapture(t, pcapPath, cut, ws, ws+window)
	if frames == 0 {
		t.Fatal("the second capture has no frame in the window")
	}
	res, err := convert.File(context.Background(), cut, convert.Options{OutDir: dir,
		Flow: flow.Options{SessionNames: true, DecodeVLAN: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := decodeFile(t, res.Output)
	got := decodeFile(t, sampleFile)
	if len(want.Flows) < 8 {
		t.Errorf("convert found only %d flows: the traffic did not happen as planned", len(want.Flows))
	}
	compareTimingTolerant(t, got, want)
	named := 0
	for _, f := range got.Flows {
		if strings.Contains(f.Dst, "e2e.test") {
			named++
		}
	}
	if named == 0 {
		t.Errorf("no flow is named from DNS, SNI or Host:\n%s", jsonOf(got.Flows))
	}
}

// cutCapture copies the frames with lo <= time < hi into a new pcap and returns how many.
func cutCapture(t *testing.T, in, out string, lo, hi int64) int {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	w := pcapgo.NewWriter(o)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := ci.Timestamp.Unix(); s >= lo && s < hi {
			if err := w.WritePacket(ci, data); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

func decodeFile(t *testing.T, path string) *bayseflow.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := bayseflow.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clockSkew is how far the kernel's timestamps of one packet may differ between two capture sockets on
// the same interface: the sensor's and the test's tcpdump each take the time of an outgoing packet as
// it reaches them, so the same packet can be a microsecond apart in the two captures.
const clockSkew = 2.5e-6

// compareTimingTolerant compares a sample with convert's output as the conformance test does — every
// field of every flow, and their order — except that times may differ by clockSkew.
func compareTimingTolerant(t *testing.T, got, want *bayseflow.File) {
	t.Helper()
	num := func(n json.Number) float64 { f, _ := n.Float64(); return f }
	if d := num(json.Number(got.TrafficDate)) - num(json.Number(want.TrafficDate)); d > clockSkew || d < -clockSkew {
		t.Errorf("trafficDate %s, convert gives %s", got.TrafficDate, want.TrafficDate)
	}
	key := func(r bayseflow.Row) string { return r.Src + " " + r.Dst + " " + r.ProtocolInformation }
	byKey := map[string]bayseflow.Row{}
	for _, r := range want.Flows {
		byKey[key(r)] = r
	}
	if len(got.Flows) != len(want.Flows) {
		t.Errorf("%d flows, convert gives %d:\n got %s\nwant %s", len(got.Flows), len(want.Flows), jsonOf(got.Flows), jsonOf(want.Flows))
		return
	}
	sameOrder := true
	for i, g := range got.Flows {
		w, ok := byKey[key(g)]
		if !ok {
			t.Errorf("flow %s is not in convert's output", jsonOf(g))
			continue
		}
		for _, n := range [][2]json.Number{{g.RelativeStart, w.RelativeStart}, {g.Duration, w.Duration}} {
			if d := num(n[0]) - num(n[1]); d > clockSkew || d < -clockSkew {
				t.Errorf("flow %s: time %s, convert gives %s", key(g), n[0], n[1])
			}
		}
		g2, w2 := g, w
		g2.RelativeStart, g2.Duration, g2.Identifier = "", "", ""
		w2.RelativeStart, w2.Duration, w2.Identifier = "", "", ""
		if g2 != w2 {
			t.Errorf("flow differs:\n got %s\nwant %s", jsonOf(g), jsonOf(w))
		}
		if key(want.Flows[i]) != key(g) {
			sameOrder = false
			if d := num(want.Flows[i].RelativeStart) - num(g.RelativeStart); d > clockSkew || d < -clockSkew {
				t.Errorf("flow %d is %s, convert has %s there", i, key(g), key(want.Flows[i]))
			}
		}
	}
	if sameOrder {
		for i := range got.Flows {
			if got.Flows[i].Identifier != want.Flows[i].Identifier {
				t.Errorf("flow %d identifier %q, convert gives %q", i, got.Flows[i].Identifier, want.Flows[i].Identifier)
			}
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
