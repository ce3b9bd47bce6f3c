package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Collector, a live sensor and the NetworkSage fake, all real processes: a window closes, the sample is
// relayed with the fake's sampleId, and `flowctl sage flows` shows its flows.
func TestSampleRelayedToNetworkSage(t *testing.T) {
	needRoot(t)
	bin := binaries(t)
	dir := t.TempDir()
	flowctl := filepath.Join(bin, "flowctl")
	// Test hosts: ffr-sensor (10.96.0.11) talks to ffr-services (10.96.0.2, web 100.64.2.1); the sensor
	// reaches the collector at 10.95.0.1 over a control link.
	cleanup := func() {
		_ = runQuiet("ip", "link", "del", "ffr-ctl0")
		_ = runQuiet("ip", "netns", "del", "ffr-sensor")
		_ = runQuiet("ip", "netns", "del", "ffr-services")
	}
	cleanup()
	t.Cleanup(cleanup)
	for _, ns := range []string{"ffr-sensor", "ffr-services"} {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "ffr-data", "netns", "ffr-sensor", "type", "veth", "peer", "name", "ffr-data", "netns", "ffr-services")
	run(t, "ip", "-n", "ffr-sensor", "addr", "add", "10.96.0.11/24", "dev", "ffr-data")
	run(t, "ip", "-n", "ffr-services", "addr", "add", "10.96.0.2/24", "dev", "ffr-data")
	run(t, "ip", "-n", "ffr-services", "addr", "add", "100.64.2.1/24", "dev", "ffr-data")
	run(t, "ip", "-n", "ffr-sensor", "link", "set", "ffr-data", "up")
	run(t, "ip", "-n", "ffr-services", "link", "set", "ffr-data", "up")
	run(t, "ip", "-n", "ffr-sensor", "route", "add", "100.64.2.0/24", "via", "10.96.0.2")
	run(t, "ip", "link", "add", "ffr-ctl0", "type", "veth", "peer", "name", "ffr-ctl1", "netns", "ffr-sensor")
	run(t, "ip", "addr", "add", "10.95.0.1/24", "dev", "ffr-ctl0")
	run(t, "ip", "link", "set", "ffr-ctl0", "up")
	run(t, "ip", "-n", "ffr-sensor", "addr", "add", "10.95.0.2/24", "dev", "ffr-ctl1")
	run(t, "ip", "-n", "ffr-sensor", "link", "set", "ffr-ctl1", "up")

	pkiDir := filepath.Join(dir, "pki")
	run(t, flowctl, "certs", "init", "--dir", pkiDir)
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "collector", "--name", "c1", "--ip", "10.95.0.1")
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "sensor", "--name", "ffr-sensor")
	run(t, flowctl, "certs", "issue", "--dir", pkiDir, "--role", "reader", "--name", "r")

	const key = "e2e-test-key-0123456789abcdef"
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fakeAddr := "127.0.0.1:18088"
	sageURL := "http://" + fakeAddr
	start(t, filepath.Join(dir, "fake.log"), flowctl, "sage", "fake", "--listen", fakeAddr, "--processing-delay", "1s",
		"--networksage-api-key-file", keyFile)
	waitFor(t, 20*time.Second, "the NetworkSage fake", func() bool { return listening(fakeAddr) })

	addr := "10.95.0.1:17444"
	collectorLog := filepath.Join(dir, "collector.log")
	start(t, collectorLog, filepath.Join(bin, "collector"), "--listen", addr, "--metrics-listen", "",
		"--data-dir", filepath.Join(dir, "data"), "--window", "10s", "--grace", "3s",
		"--cert", filepath.Join(pkiDir, "collector-c1.pem"), "--key", filepath.Join(pkiDir, "collector-c1-key.pem"),
		"--ca", filepath.Join(pkiDir, "ca.pem"), "--networksage-url", sageURL, "--networksage-api-key-file", keyFile)
	waitFor(t, 20*time.Second, "the collector", func() bool { return listening(addr) })
	start(t, filepath.Join(dir, "services.log"), "ip", "netns", "exec", "ffr-services", filepath.Join(bin, "demonet"),
		"serve", "-dns", "10.96.0.2:53", "-web", "100.64.2.1", "-names", "relay.e2e.test=100.64.2.1")
	sensorLog := filepath.Join(dir, "sensor.log")
	start(t, sensorLog, "ip", "netns", "exec", "ffr-sensor", filepath.Join(bin, "sensor"), "--collector", addr,
		"--interface", "ffr-data", "--cert", filepath.Join(pkiDir, "sensor-ffr-sensor.pem"),
		"--key", filepath.Join(pkiDir, "sensor-ffr-sensor-key.pem"), "--ca", filepath.Join(pkiDir, "ca.pem"),
		"--spool-dir", filepath.Join(dir, "spool"), "--window", "10s", "--metrics-listen", "")
	waitFor(t, 20*time.Second, "the sensor to connect", func() bool { return strings.Contains(readFile(sensorLog), "connected") })
	run(t, "ip", "netns", "exec", "ffr-sensor", filepath.Join(bin, "demonet"), "traffic", "-dns", "10.96.0.2:53",
		"-names", "relay.e2e.test", "-rounds", "2")

	type sample struct {
		ID, State, RemoteID string
		FlowCount           string
	}
	var relayed sample
	waitFor(t, 60*time.Second, "a relayed sample", func() bool {
		out, err := exec.Command(flowctl, "samples", "list", "--collector", addr, "--cert", filepath.Join(pkiDir, "reader-r.pem"),
			"--key", filepath.Join(pkiDir, "reader-r-key.pem"), "--ca", filepath.Join(pkiDir, "ca.pem"), "-o", "json").Output()
		if err != nil {
			return false
		}
		var list []map[string]any
		if json.Unmarshal(out, &list) != nil {
			return false
		}
		for _, s := range list {
			if s["state"] == "relayed" || s["state"] == "processed" {
				relayed = sample{ID: fmt.Sprint(s["id"]), State: fmt.Sprint(s["state"]), RemoteID: fmt.Sprint(s["remoteId"]),
					FlowCount: fmt.Sprint(s["flowCount"])}
				return relayed.RemoteID != "" && relayed.RemoteID != "<nil>"
			}
		}
		return false
	})
	// The fake has the same sample, and its flows are the sample's.
	var flowsOut string
	waitFor(t, 30*time.Second, "NetworkSage to list the sample's flows", func() bool {
		out, err := exec.Command(flowctl, "sage", "flows", relayed.RemoteID, "--networksage-url", sageURL,
			"--networksage-api-key-file", keyFile, "-o", "json").CombinedOutput()
		flowsOut = string(out)
		return err == nil && strings.Contains(flowsOut, "relay.e2e.test")
	})
	var flows []any
	if err := json.Unmarshal([]byte(flowsOut), &flows); err != nil {
		t.Fatalf("sage flows output is not JSON: %v\n%s", err, flowsOut)
	}
	if fmt.Sprint(len(flows)) != relayed.FlowCount {
		t.Errorf("NetworkSage lists %d flows for %s, the sample has %s", len(flows), relayed.RemoteID, relayed.FlowCount)
	}
	for _, log := range []string{collectorLog, filepath.Join(dir, "fake.log"), sensorLog} {
		if strings.Contains(readFile(log), key) {
			t.Errorf("the API key appears in %s", filepath.Base(log))
		}
	}
}
