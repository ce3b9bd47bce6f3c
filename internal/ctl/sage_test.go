package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
)

const sageTestKey = "nsk_ctl_test_5a5a5a5a5a5a5a5a5a5a5a5a5a5a"

// runCtl runs flowctl with args and returns its standard output and error.
func runCtl(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// startSageFake runs `flowctl sage fake` on a free loopback port and returns its URL and everything
// it logged, once it has stopped.
func startSageFake(t *testing.T, args ...string) (string, func() string) {
	t.Helper()
	pr, pw := io.Pipe()
	var logs bytes.Buffer
	cmd := NewRootCommand()
	cmd.SetOut(pw)
	cmd.SetErr(&logs)
	cmd.SetArgs(append([]string{"sage", "fake", "--listen", "127.0.0.1:0"}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		cancel()
		t.Fatalf("sage fake printed nothing: %v", <-done)
	}
	banner := sc.Text()
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(banner)
	if !strings.Contains(banner, "FAKE") || m == nil {
		t.Fatalf("banner %q", banner)
	}
	var rest bytes.Buffer
	drained := make(chan struct{})
	go func() {
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		close(drained)
	}()
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sage fake: %v", err)
			}
			<-drained
		}
		return banner + "\n" + rest.String() + logs.String()
	}
	t.Cleanup(func() { stop() })
	return m[1], stop
}

func TestSageCommandsAgainstFake(t *testing.T) {
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", sageTestKey)
	url, stopFake := startSageFake(t, "--processing-delay", "0s")
	dir := t.TempDir()
	name := "web01_1700000100.bf"
	path := filepath.Join(dir, name)
	content := `{"hash": "h", "trafficDate": "1700000100.5", "fileName": "` + name + `", "BayseFlows": [{"src": "10.0.0.5:40000", ` +
		`"dst": "example.com:443", "destinationNameSource": "passive", "srcPkts": 3, "srcBytes": 100, "dstPkts": 2, ` +
		`"dstBytes": 1000, "relativeStart": 0.0, "protocolInformation": "TCP", "identifier": "1", "duration": 1.5}]}`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	out, _, err := runCtl(t, "sage", "upload", "--networksage-url", url, "-o", "json", path)
	if err != nil {
		t.Fatal(err)
	}
	var up map[string]string
	if err := json.Unmarshal([]byte(out), &up); err != nil || len(up["sampleId"]) != 32 || up["fileName"] != name {
		t.Fatalf("upload output %q (%v)", out, err)
	}
	id := up["sampleId"]

	out, _, err = runCtl(t, "sage", "list", "--networksage-url", url)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, name) || !strings.Contains(out, "SAMPLE ID") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, _, err = runCtl(t, "sage", "sample", "--networksage-url", url, id)
	if err != nil || !strings.Contains(out, "processed:    true") || !strings.Contains(out, "1700000100.5") {
		t.Fatalf("sample: %v\n%s", err, out)
	}
	out, _, err = runCtl(t, "sage", "flows", "--networksage-url", url, id)
	if err != nil || !strings.Contains(out, "10.0.0.5:40000") || !strings.Contains(out, "example.com:443") {
		t.Fatalf("flows: %v\n%s", err, out)
	}

	// A wrong key from a key file: refused, and the error names neither key.
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("nsk_wrong_key_0123456789abcdef\n"), 0o600)
	_, _, err = runCtl(t, "sage", "list", "--networksage-url", url, "--networksage-api-key-file", keyFile)
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "nsk_wrong_key") || strings.Contains(err.Error(), sageTestKey) {
		t.Fatalf("wrong key: %v", err)
	}
	// Plain http is refused off loopback.
	if _, _, err = runCtl(t, "sage", "list", "--networksage-url", "http://api.seclarity.io"); err == nil {
		t.Fatal("plain http to a remote host was accepted")
	}

	logs := stopFake()
	if strings.Contains(logs, sageTestKey) || strings.Contains(logs, "nsk_wrong_key") {
		t.Errorf("the fake's output shows a key:\n%s", logs)
	}
	if !strings.Contains(logs, "not NetworkSage") || strings.Count(logs, "FAKE") < 3 {
		t.Errorf("the fake's output does not say clearly that it is a fake:\n%s", logs)
	}
}

func TestSageNeedsKey(t *testing.T) {
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", "")
	_, _, err := runCtl(t, "sage", "list")
	if err == nil || !strings.Contains(err.Error(), "FLOWFLEET_NETWORKSAGE_API_KEY") {
		t.Fatalf("no key: %v", err)
	}
	if _, _, err := runCtl(t, "sage", "fake"); err == nil {
		t.Fatal("the fake started without a key")
	}
}

func TestSageHelpShowsNoKey(t *testing.T) {
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", sageTestKey)
	for _, args := range [][]string{{"sage", "--help"}, {"sage", "upload", "--help"}, {"sage", "fake", "--help"},
		{"samples", "relay", "--help"}} {
		out, _, err := runCtl(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, sageTestKey) {
			t.Errorf("%v shows the key", args)
		}
		if args[0] == "sage" && !strings.Contains(out, "--networksage-api-key-file") {
			t.Errorf("%v lacks --networksage-api-key-file:\n%s", args, out)
		}
	}
}

// sageTranscript collects everything the commands of a test printed, to check that no key is in it.
type sageTranscript struct{ b strings.Builder }

func (s *sageTranscript) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	out, errOut, err := runCtl(t, args...)
	s.b.WriteString(out + errOut)
	if err != nil {
		s.b.WriteString(err.Error())
	}
	return out, errOut, err
}

func (s *sageTranscript) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := s.run(t, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

// writeEnrichSample writes a BayseFlow file with a web flow, a malicious flow and a DNS flow, and
// returns its path.
func writeEnrichSample(t *testing.T, name string) string {
	t.Helper()
	flow := func(dst, proto string) string {
		return `{"src": "10.0.0.5:40000", "dst": "` + dst + `", "destinationNameSource": "passive", "srcPkts": 3, ` +
			`"srcBytes": 100, "dstPkts": 2, "dstBytes": 1000, "relativeStart": 0.25, "protocolInformation": "` + proto +
			`", "identifier": "1", "duration": 1.5}`
	}
	content := `{"hash": "h", "trafficDate": "1700000100.5", "fileName": "` + name + `", "BayseFlows": [` +
		flow("example.com:443", "TCP") + `, ` + flow("c2.bad.example:8080", "TCP") + `, ` + flow("10.0.0.1:53", "UDP") + `]}`
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func uploadEnrichSample(t *testing.T, tr *sageTranscript, url string) (id, publicID string) {
	t.Helper()
	out := tr.mustRun(t, "sage", "upload", "--networksage-url", url, "-o", "json", writeEnrichSample(t, "web01_1700000100.bf"))
	var up map[string]string
	if err := json.Unmarshal([]byte(out), &up); err != nil || len(up["sampleId"]) != 32 {
		t.Fatalf("upload output %q (%v)", out, err)
	}
	return up["sampleId"], up["uuid"]
}

var enrichCats = []string{sagefake.CategoryWebTLS, sagefake.CategoryMalicious, sagefake.CategoryDNS}

func TestSageEnrichmentCommands(t *testing.T) {
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", sageTestKey)
	url, stopFake := startSageFake(t, "--processing-delay", "0s")
	var tr sageTranscript
	u := []string{"--networksage-url", url}
	id, publicID := uploadEnrichSample(t, &tr, url)

	// wait: processed at once.
	out := tr.mustRun(t, append([]string{"sage", "wait", id, "--interval", "1s", "--timeout", "10s"}, u...)...)
	if !strings.Contains(out, "processed:    true") || !strings.Contains(out, "1700000100.5") {
		t.Errorf("wait:\n%s", out)
	}

	// flows and aggregated: the rule's categories, ids and counts; numbers as numbers in JSON.
	var flows []map[string]any
	out = tr.mustRun(t, append([]string{"sage", "flows", id, "-o", "json"}, u...)...)
	if err := json.Unmarshal([]byte(out), &flows); err != nil || len(flows) != 3 {
		t.Fatalf("flows json %v:\n%s", err, out)
	}
	protos := []string{"TCP", "TCP", "UDP"}
	ids := make([]string, 3)
	for i, f := range flows {
		ids[i] = sagefake.FlowID("10.0.0.5:40000", f["destinationData"].(string), protos[i])
		if f["flowCategory"] != enrichCats[i] || f["flowId"] != ids[i] || f["sourceBytes"] != float64(100) ||
			f["duration"] != 1.5 || f["eventId"] != sagefake.EventID(enrichCats[i], ids[i]) {
			t.Errorf("flow %d: %v", i, f)
		}
	}
	eventID := sagefake.EventID(sagefake.CategoryMalicious, ids[1])
	out = tr.mustRun(t, append([]string{"sage", "flows", id}, u...)...)
	if !strings.Contains(out, "CATEGORY") || !strings.Contains(out, eventID) || !strings.Contains(out, sagefake.CategoryMalicious) {
		t.Errorf("flows table:\n%s", out)
	}
	var agg []struct {
		Secflow     map[string]any           `json:"secflow"`
		Destination sagefake.DestinationInfo `json:"destination"`
		Behavior    map[string]any           `json:"behavior"`
		Event       map[string]any           `json:"event"`
		FlowIDCount int64                    `json:"flowIdCount"`
	}
	aggOut := tr.mustRun(t, append([]string{"sage", "aggregated", id, "-o", "json"}, u...)...)
	if err := json.Unmarshal([]byte(aggOut), &agg); err != nil || len(agg) != 3 {
		t.Fatalf("aggregated json %v:\n%s", err, aggOut)
	}
	for i, a := range agg {
		dst := a.Secflow["destinationData"].(string)
		if a.Secflow["flowId"] != ids[i] || a.Secflow["sourcePackets"] != float64(3) || a.FlowIDCount != sagefake.Count(ids[i]) ||
			!reflect.DeepEqual(a.Destination, sagefake.Destination(dst)) || a.Behavior["name"] != "fake-behavior" ||
			(a.Event != nil) != (i == 1) {
			t.Errorf("aggregated %d: %+v", i, a)
		}
	}
	out = tr.mustRun(t, append([]string{"sage", "aggregated", id}, u...)...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.Contains(lines[0], "GLOBAL COUNT") ||
		!strings.Contains(lines[2], ids[1]) || !strings.Contains(lines[2], strconv.FormatInt(sagefake.Count(ids[1]), 10)) ||
		!strings.Contains(lines[2], "FAKE c2.bad.example") || !strings.Contains(lines[2], eventID) {
		t.Errorf("aggregated table:\n%s", out)
	}

	// The public view needs no key: the same elements without one.
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", "")
	pubOut := tr.mustRun(t, append([]string{"sage", "public", publicID, "-o", "json"}, u...)...)
	if pubOut != aggOut {
		t.Errorf("public view differs from the private one:\n%s\n%s", pubOut, aggOut)
	}
	if _, _, err := tr.run(t, append([]string{"sage", "aggregated", id}, u...)...); err == nil {
		t.Error("aggregated without a key")
	}
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", sageTestKey)

	// Reports: none before a request; --request generates one.
	out, errOut, err := tr.run(t, append([]string{"sage", "summary", id}, u...)...)
	if err != nil || !strings.Contains(squeeze(out), "status: failed") || !strings.Contains(errOut, "--request") {
		t.Errorf("summary before a request: %v\n%s%s", err, out, errOut)
	}
	var rep map[string]any
	out = tr.mustRun(t, append([]string{"sage", "summary", id, "--request", "-o", "json"}, u...)...)
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep["status"] != "generated" || rep["verdict"] != "malicious" ||
		rep["confidence"] != "high" || rep["summary"] != sagefake.ReportText("summary", enrichCats) || rep["kind"] != "summary" ||
		rep["details"].(map[string]any)["flows"] != float64(3) {
		t.Errorf("summary --request: %v\n%s", err, out)
	}
	out = tr.mustRun(t, append([]string{"sage", "categorization", id, "--request"}, u...)...)
	if !strings.Contains(squeeze(out), "report: categorization\nstatus: generated\nverdict: malicious\nconfidence: high") ||
		!strings.Contains(out, sagefake.ReportText("categorization", enrichCats)) {
		t.Errorf("categorization --request:\n%s", out)
	}

	// count, destination, behaviour, event.
	var cnt map[string]any
	out = tr.mustRun(t, append([]string{"sage", "count", ids[1], "-o", "json"}, u...)...)
	if err := json.Unmarshal([]byte(out), &cnt); err != nil || cnt["flowId"] != ids[1] || cnt["count"] != float64(sagefake.Count(ids[1])) {
		t.Errorf("count: %v %s", err, out)
	}
	out = tr.mustRun(t, append([]string{"sage", "count", ids[1]}, u...)...)
	if want := fmt.Sprintf("flow %s: in %d samples\n", ids[1], sagefake.Count(ids[1])); out != want {
		t.Errorf("count table %q, want %q", out, want)
	}
	var dest sagefake.DestinationInfo
	out = tr.mustRun(t, append([]string{"sage", "destination", "c2.bad.example:8080", "-o", "json"}, u...)...)
	if err := json.Unmarshal([]byte(out), &dest); err != nil || !reflect.DeepEqual(dest, sagefake.Destination("c2.bad.example:8080")) {
		t.Errorf("destination: %v %s", err, out)
	}
	out = tr.mustRun(t, append([]string{"sage", "destination", "c2.bad.example:8080"}, u...)...)
	if !strings.Contains(squeeze(out), "title: FAKE c2.bad.example") || !strings.Contains(squeeze(out), "tags: fake-malicious, port-8080") {
		t.Errorf("destination table:\n%s", out)
	}
	if _, _, err := tr.run(t, append([]string{"sage", "destination", "c2.bad.example"}, u...)...); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("destination without a port: %v", err)
	}
	out = tr.mustRun(t, append([]string{"sage", "behavior", ids[0], "-o", "json"}, u...)...)
	var beh map[string]any
	if err := json.Unmarshal([]byte(out), &beh); err != nil || !reflect.DeepEqual(beh, sagefake.Behavior(ids[0])) {
		t.Errorf("behavior: %v %s", err, out)
	}
	out = tr.mustRun(t, append([]string{"sage", "behavior", ids[0]}, u...)...)
	if !strings.Contains(squeeze(out), "flowId: "+ids[0]) || !strings.Contains(squeeze(out), "name: fake-behavior") {
		t.Errorf("behavior table:\n%s", out)
	}
	out = tr.mustRun(t, append([]string{"sage", "event", eventID, "-o", "json"}, u...)...)
	var ev map[string]any
	want, _ := sagefake.Event(eventID)
	if err := json.Unmarshal([]byte(out), &ev); err != nil || !reflect.DeepEqual(ev, want) {
		t.Errorf("event: %v %s", err, out)
	}
	if _, _, err := tr.run(t, append([]string{"sage", "event", "nope"}, u...)...); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown event: %v", err)
	}

	logs := stopFake()
	if strings.Contains(logs, sageTestKey) || strings.Contains(tr.b.String(), sageTestKey) {
		t.Errorf("a key is in the output:\n%s\n%s", logs, tr.b.String())
	}
}

// Polling: a report that takes a while is waited for; a failing one ends in an error; a sample that is
// not processed in time ends the wait with an error.
func TestSagePolling(t *testing.T) {
	t.Setenv("FLOWFLEET_NETWORKSAGE_API_KEY", sageTestKey)
	var tr sageTranscript
	slowURL, stopSlow := startSageFake(t, "--processing-delay", "0s", "--report-delay", "1500ms")
	id, _ := uploadEnrichSample(t, &tr, slowURL)
	out, errOut, err := tr.run(t, "sage", "summary", id, "--request", "--interval", "1s", "--networksage-url", slowURL)
	if err != nil || !strings.Contains(squeeze(out), "status: generated") || !strings.Contains(errOut, "not generated yet; asking again in 1s") {
		t.Errorf("slow summary: %v\n%s%s", err, out, errOut)
	}

	failURL, stopFail := startSageFake(t, "--processing-delay", "0s", "--fail-reports")
	id, _ = uploadEnrichSample(t, &tr, failURL)
	out, _, err = tr.run(t, "sage", "categorization", id, "--request", "--interval", "1s", "--grace", "0s", "--networksage-url", failURL)
	if err == nil || !strings.Contains(err.Error(), "could not generate the categorization") || !strings.Contains(squeeze(out), "status: failed") {
		t.Errorf("failing categorization: %v\n%s", err, out)
	}

	lateURL, stopLate := startSageFake(t, "--processing-delay", "1h")
	id, _ = uploadEnrichSample(t, &tr, lateURL)
	out, errOut, err = tr.run(t, "sage", "wait", id, "--interval", "1s", "--timeout", "1500ms", "--networksage-url", lateURL)
	if err == nil || !strings.Contains(err.Error(), "not processed after 1.5s") || !strings.Contains(out, "processed:    false") ||
		strings.Count(errOut, "not processed yet") != 1 {
		t.Errorf("late sample: %v\n%s%s", err, out, errOut)
	}
	if _, _, err := tr.run(t, "sage", "wait", id, "--interval", "10ms", "--networksage-url", lateURL); err == nil || !strings.Contains(err.Error(), "--interval") {
		t.Errorf("a 10ms interval: %v", err)
	}

	// A /list that does not match the upload: one flow more, shown as such.
	mmURL, stopMM := startSageFake(t, "--processing-delay", "0s", "--mismatch-flows")
	id, _ = uploadEnrichSample(t, &tr, mmURL)
	out = tr.mustRun(t, "sage", "flows", id, "--networksage-url", mmURL)
	if !strings.Contains(out, sagefake.MismatchDestination) || strings.Count(out, "\n") != 5 {
		t.Errorf("mismatched flows:\n%s", out)
	}

	logs := stopSlow() + stopFail() + stopLate() + stopMM()
	if strings.Contains(logs, sageTestKey) || strings.Contains(tr.b.String(), sageTestKey) {
		t.Errorf("a key is in the output:\n%s\n%s", logs, tr.b.String())
	}
}

// squeeze collapses the runs of blanks a table aligns its columns with.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
