package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// goldenCapture is a capture of the convert package's golden tests and its expected .bf.
var goldenCapture = filepath.Join("..", "..", "pkg", "formats", "convert", "testdata", "golden", "dnscname.pcap")

const netflowCSV = "ts,te,td,sa,da,sp,dp,pr,ipkt,ibyt,opkt,obyt\n" +
	"2022-06-02 17:21:39,2022-06-02 17:21:39,0.000,192.168.12.164,9.9.9.9,62239,53,UDP,1,60,0,0\n"

// runCtlIn runs flowctl with stdin as its standard input.
func runCtlIn(t *testing.T, stdin []byte, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand()
	cmd.SetIn(bytes.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readBF(t *testing.T, path string) *bayseflow.File {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := bayseflow.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func goldenBytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenCapture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// Several inputs are converted in turn with a summary line each; a failing one is reported, the
// others are still converted, and the call fails.
func TestConvertManyInputs(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	a := writeFile(t, filepath.Join(in, "a.netflow"), []byte(netflowCSV))
	b := writeFile(t, filepath.Join(in, "b.pcap"), goldenBytes(t))
	// UTF-8 text: refused (R-ZEEK-1); plain ASCII text would be read as a Zeek log.
	bad := writeFile(t, filepath.Join(in, "bad.txt"), []byte("h\xc3\xa9llo\n"))
	_, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--tz", "UTC", "-o", out, a, bad, b)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 inputs failed") || !strings.Contains(err.Error(), "bad.txt") {
		t.Errorf("error %v", err)
	}
	if !strings.Contains(stderr, a+": 1 flows → "+filepath.Join(out, "a.bf")) ||
		!strings.Contains(stderr, b+": 6 packets, 4 flows → "+filepath.Join(out, "b_filtered.bf")) ||
		!strings.Contains(stderr, bad+": unsupported input") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if f := readBF(t, filepath.Join(out, "b_filtered.bf")); len(f.Flows) != 4 || f.FileName != "b_filtered.bf" {
		t.Errorf("b_filtered.bf: %d flows, fileName %q", len(f.Flows), f.FileName)
	}
	if f := readBF(t, filepath.Join(out, "a.bf")); len(f.Flows) != 1 {
		t.Errorf("a.bf: %d flows", len(f.Flows))
	}
	if got := entries(t, out); len(got) != 2 {
		t.Errorf("output directory holds %q, want a.bf and b_filtered.bf", got)
	}
}

// Inputs whose outputs would share a name are refused before anything is written, unless --force.
func TestConvertCollisions(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	c := writeFile(t, filepath.Join(in, "reddit.csv"), []byte(netflowCSV))
	n := writeFile(t, filepath.Join(in, "reddit.netflow"), []byte(netflowCSV))
	ok := writeFile(t, filepath.Join(in, "other.netflow"), []byte(netflowCSV))
	_, _, err := runCtlIn(t, nil, "convert", "--name-cache", "", "-o", out, ok, c, n)
	if err == nil || !strings.Contains(err.Error(), "collide") || !strings.Contains(err.Error(), "reddit.bf ← "+c+", "+n) {
		t.Errorf("error %v", err)
	}
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("refused call wrote %q", got)
	}
	_, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--force", "-o", out, ok, c, n)
	if err != nil || !strings.Contains(stderr, "--force") {
		t.Errorf("--force: %v\n%s", err, stderr)
	}
	if got := entries(t, out); len(got) != 2 {
		t.Errorf("--force wrote %q, want other.bf and reddit.bf", got)
	}
}

// "-" reads a capture or a log from standard input into stdin.bf.
func TestConvertStdin(t *testing.T) {
	out := t.TempDir()
	_, stderr, err := runCtlIn(t, goldenBytes(t), "convert", "--name-cache", "", "-o", out, "-")
	if err != nil || !strings.Contains(stderr, "stdin: 6 packets, 4 flows") {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if f := readBF(t, filepath.Join(out, "stdin.bf")); len(f.Flows) != 4 || f.FileName != "stdin.bf" {
		t.Errorf("capture: %d flows, fileName %q", len(f.Flows), f.FileName)
	}
	_, stderr, err = runCtlIn(t, []byte(netflowCSV), "convert", "--name-cache", "", "--tz", "UTC", "-o", out, "-")
	if err != nil || !strings.Contains(stderr, "stdin: 1 flows") {
		t.Fatalf("log: %v\n%s", err, stderr)
	}
	if f := readBF(t, filepath.Join(out, "stdin.bf")); len(f.Flows) != 1 || f.Flows[0].Dst != "9.9.9.9:53" {
		t.Errorf("log: %+v", f.Flows)
	}
	if _, _, err := runCtlIn(t, nil, "convert", "-o", out, "-", "-"); err == nil {
		t.Error(`"-" twice was accepted`)
	}
}

// --stdout writes the .bf to standard output (the same as the file convert writes, but for its random
// hash) and the summary to standard error; it takes one input only.
func TestConvertStdout(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "x.pcap"), goldenBytes(t))
	stdout, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--stdout", p)
	if err != nil || !strings.Contains(stderr, "→ standard output") {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, _, err := runCtlIn(t, nil, "convert", "--name-cache", "", "-o", dir, p); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, "x_filtered.bf"))
	if err != nil {
		t.Fatal(err)
	}
	after := func(s string) string { return s[strings.Index(s, `"trafficDate"`):] }
	if !strings.Contains(stdout, `"trafficDate"`) || after(stdout) != after(string(file)) {
		t.Errorf("stdout differs from the file:\n%s\n%s", stdout, file)
	}
	if got := entries(t, dir); len(got) != 2 {
		t.Errorf("--stdout wrote a file: %q", got)
	}
	if _, _, err := runCtlIn(t, nil, "convert", "--stdout", p, p); err == nil || !strings.Contains(err.Error(), "exactly one input") {
		t.Errorf("--stdout with two inputs: %v", err)
	}
}

// --strict fails an input that gives no flows; without it such an input is converted and the call
// succeeds.
func TestConvertStrict(t *testing.T) {
	dir := t.TempDir()
	// A pcap file header and no frames (R-ERR-2: an empty sample).
	header := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	empty := writeFile(t, filepath.Join(dir, "empty.pcap"), header)
	if _, _, err := runCtlIn(t, nil, "convert", "--name-cache", "", "-o", dir, empty); err != nil {
		t.Errorf("without --strict: %v", err)
	}
	_, _, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--strict", "-o", dir, empty)
	if err == nil || !strings.Contains(err.Error(), "no flows (--strict)") {
		t.Errorf("--strict: %v", err)
	}
}

// The summary says how many flows the long-term name cache named, and hints reach standard error.
func TestConvertSummaryCacheAndHints(t *testing.T) {
	dir := t.TempDir()
	cache := writeFile(t, filepath.Join(dir, "cache.txt"), []byte("9.9.9.9 dns.quad9.net\n"))
	nf := writeFile(t, filepath.Join(dir, "f.netflow"), []byte(netflowCSV))
	_, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", cache, "--tz", "UTC", "-o", dir, nf)
	if err != nil || !strings.Contains(stderr, "1 flow(s) named from the name cache") {
		t.Errorf("%v\n%s", err, stderr)
	}
	_, stderr, err = runCtlIn(t, nil, "convert", "--name-cache", "", "--tz", "UTC", "-o", dir, nf)
	if err != nil || !strings.Contains(stderr, "name cache off") {
		t.Errorf("%v\n%s", err, stderr)
	}
	vlan := filepath.Join("..", "..", "pkg", "formats", "convert", "testdata", "golden", "vlan.pcap")
	_, stderr, err = runCtlIn(t, nil, "convert", "--name-cache", "", "-o", dir, vlan)
	if err != nil || !strings.Contains(stderr, "flowctl: hint: "+vlan+": 4 of 5 frame(s) are 802.1Q/QinQ-tagged") {
		t.Errorf("%v\n%s", err, stderr)
	}
}
