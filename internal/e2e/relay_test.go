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

	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// Collector, a live sensor and the NetworkSage fake, all real processes: a window closes, the sample is
// relayed with the fake's sampleId, and `flowctl sage flows` shows its flows. NetworkSage's answers come
// back (issue #17): the collector, killed with SIGKILL between processed and enriched, resumes after a
// restart and enriches the sample once; every flow's category is what the fake's rule gives, the
// labeled .bf reads back, and the verdict shows in `samples list`.
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
	fakeLog := filepath.Join(dir, "fake.log")
	start(t, fakeLog, flowctl, "sage", "fake", "--listen", fakeAddr, "--processing-delay", "1s", "--report-delay", "8s",
		"--networksage-api-key-file", keyFile)
	waitFor(t, 20*time.Second, "the NetworkSage fake", func() bool { return listening(fakeAddr) })

	addr := "10.95.0.1:17444"
	collectorLog := filepath.Join(dir, "collector.log")
	collectorArgs := []string{"--listen", addr, "--metrics-listen", "",
		"--data-dir", filepath.Join(dir, "data"), "--window", "10s", "--grace", "3s",
		"--cert", filepath.Join(pkiDir, "collector-c1.pem"), "--key", filepath.Join(pkiDir, "collector-c1-key.pem"),
		"--ca", filepath.Join(pkiDir, "ca.pem"), "--networksage-url", sageURL, "--networksage-api-key-file", keyFile,
		"--networksage-poll-interval", "1s"}
	collector := start(t, collectorLog, filepath.Join(bin, "collector"), collectorArgs...)
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

	// Killed between processed and enriched (flows matched, summary not generated yet: --report-delay).
	reader := []string{"--collector", addr, "--cert", filepath.Join(pkiDir, "reader-r.pem"),
		"--key", filepath.Join(pkiDir, "reader-r-key.pem"), "--ca", filepath.Join(pkiDir, "ca.pem")}
	sampleJSON := func() map[string]any {
		out, err := exec.Command(flowctl, append([]string{"samples", "list", "-o", "json"}, reader...)...).Output()
		var list []map[string]any
		if err != nil || json.Unmarshal(out, &list) != nil {
			return nil
		}
		for _, s := range list {
			if s["id"] == relayed.ID {
				return s
			}
		}
		return nil
	}
	waitFor(t, 30*time.Second, "the sample processed with its flows matched", func() bool {
		s := sampleJSON()
		return s != nil && s["state"] == "processed" && s["flowsMatched"] != float64(0)
	})
	if err := collector.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = collector.cmd.Process.Wait()
	collectorLog2 := filepath.Join(dir, "collector-restarted.log")
	start(t, collectorLog2, filepath.Join(bin, "collector"), collectorArgs...)
	var enriched map[string]any
	waitFor(t, 60*time.Second, "the sample enriched after the restart", func() bool {
		enriched = sampleJSON()
		return enriched != nil && enriched["state"] == "enriched"
	})
	checkEnrichment(t, flowctl, reader, relayed.ID, enriched, filepath.Join(dir, "labeled.bf"))
	// Enriched once: the restart resumed the report phase instead of fetching the flows again.
	for _, what := range []string{"method=GET path=/sec/v1.0/samples/" + relayed.RemoteID + "/aggregated",
		"method=POST path=/sec/v1.0/samples/" + relayed.RemoteID + "/summary"} {
		if n := strings.Count(readFile(fakeLog), what); n != 1 {
			t.Errorf("%q: %d requests, want 1", what, n)
		}
	}
	for _, log := range []string{collectorLog, collectorLog2, fakeLog, sensorLog} {
		if strings.Contains(readFile(log), key) {
			t.Errorf("the API key appears in %s", filepath.Base(log))
		}
	}
}

// checkEnrichment checks an enriched sample against the fake's rule: each flow's category (in
// `samples flows`, and as the label of `samples get --labeled`), and the verdict.
func checkEnrichment(t *testing.T, flowctl string, reader []string, id string, sample map[string]any, labeledPath string) {
	t.Helper()
	content := run(t, flowctl, append([]string{"samples", "get", id}, reader...)...)
	file, err := bayseflow.Decode([]byte(content))
	if err != nil {
		t.Fatalf("samples get: %v", err)
	}
	out := run(t, flowctl, append([]string{"samples", "flows", id, "-o", "json"}, reader...)...)
	var flows []struct {
		Category, FlowID string
	}
	if err := json.Unmarshal([]byte(out), &flows); err != nil || len(flows) != len(file.Flows) || len(flows) == 0 {
		t.Fatalf("samples flows: %d flows for %d in the file: %v", len(flows), len(file.Flows), err)
	}
	cats := make([]string, len(flows))
	for i, r := range file.Flows {
		cats[i] = sagefake.Category(r.Dst)
		if flows[i].Category != cats[i] || flows[i].FlowID != sagefake.FlowID(r.Src, r.Dst, r.ProtocolInformation) {
			t.Errorf("flow %d (%s → %s): category %q flow id %q, want %q (the fake's rule)", i, r.Src, r.Dst,
				flows[i].Category, flows[i].FlowID, cats[i])
		}
	}
	verdict, confidence := sagefake.Verdict(cats)
	if sample["verdict"] != verdict || sample["confidence"] != confidence || sample["flowsMatched"] != float64(len(cats)) ||
		sample["flowsUnmatched"] != float64(0) {
		t.Errorf("sample %s: verdict %v (%v), matched %v unmatched %v; want %s (%s), %d, 0", id, sample["verdict"],
			sample["confidence"], sample["flowsMatched"], sample["flowsUnmatched"], verdict, confidence, len(cats))
	}
	table := run(t, flowctl, append([]string{"samples", "list"}, reader...)...)
	if !strings.Contains(table, "VERDICT") || !strings.Contains(table, verdict+" ("+confidence+")") {
		t.Errorf("samples list does not show the verdict:\n%s", table)
	}
	run(t, flowctl, append([]string{"samples", "get", id, "--labeled", "-f", labeledPath}, reader...)...)
	b, err := os.ReadFile(labeledPath)
	if err != nil {
		t.Fatal(err)
	}
	labeled, err := bayseflow.Decode(b)
	if err != nil || len(labeled.Flows) != len(cats) {
		t.Fatalf("the labeled file does not read back: %v", err)
	}
	for i, r := range labeled.Flows {
		if r.Label != cats[i] || r.Src != file.Flows[i].Src || r.Dst != file.Flows[i].Dst {
			t.Errorf("labeled flow %d: %+v, want label %q", i, r, cats[i])
		}
	}
}
