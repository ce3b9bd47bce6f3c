package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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
