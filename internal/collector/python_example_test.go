package collector

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector/closer"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

// pythonExample is examples/python/list_samples.py, relative to this package's directory.
const pythonExample = "../../examples/python/list_samples.py"

// findPythonWithGRPC returns a Python 3 interpreter that can import grpc and google.protobuf:
// $FLOWFLEET_PYTHON if set, else the first of `python3` on PATH and /usr/bin/python3 (Debian's, where
// apt's python3-grpcio and python3-protobuf live, when PATH leads to another Python such as pyenv's).
// It skips the test, saying what to install, when there is no python3 or none has the modules.
func findPythonWithGRPC(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("FLOWFLEET_PYTHON"); p != "" {
		candidates = append(candidates, p)
	} else {
		if p, err := exec.LookPath("python3"); err == nil {
			candidates = append(candidates, p)
		}
		if _, err := os.Stat("/usr/bin/python3"); err == nil {
			candidates = append(candidates, "/usr/bin/python3")
		}
	}
	if len(candidates) == 0 {
		t.Skip("skipping the Python example test: python3 not found (install it with scripts/setup.sh or apt-get install python3 python3-grpcio python3-protobuf)")
	}
	var tried []string
	for _, py := range candidates {
		out, err := exec.Command(py, "-c", "import grpc, google.protobuf").CombinedOutput()
		if err == nil {
			return py
		}
		tried = append(tried, fmt.Sprintf("%s: %s", py, lastLine(out, err)))
	}
	t.Skipf("skipping the Python example test: no python3 has the grpc and protobuf modules (install them with scripts/setup.sh or apt-get install python3-grpcio python3-protobuf); tried %s",
		strings.Join(tried, "; "))
	return ""
}

func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := lines[len(lines)-1]; l != "" {
		return l
	}
	return err.Error()
}

// TestPythonExampleListsDownloadsAndPrintsFlows runs examples/python/list_samples.py against a real
// collector over mTLS with a reader certificate: it must list the sample a sensor's batches and window
// end produced, download the same .bf the collector wrote (GetSampleContent) and print every flow
// (ListSampleFlows), escaping the attacker-controlled destination name.
func TestPythonExampleListsDownloadsAndPrintsFlows(t *testing.T) {
	py := findPythonWithGRPC(t)
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Grace: time.Hour})

	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})), "stream-py", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := int64(1_700_000_040)
	b1, b2 := testFlows(ws, 3, 0), testFlows(ws, 2, 3)
	b2[1].DstName = "evil\x1b[31m.example" // a terminal escape from the wire must not reach the terminal
	s.send(1, b1)
	s.send(2, b2)
	for i := 0; i < 2; i++ {
		if seq, dup := s.ack(); dup || seq != uint64(i+1) {
			t.Fatalf("ack %d: seq %d dup %v", i, seq, dup)
		}
	}
	s.endWindow(ws, 60, float64(ws)+0.5)
	id, fileName := closer.SampleName("web01", ws, 1)
	waitFor(t, "the sample to be written", func() bool {
		x, _ := tc.st.GetSample(context.Background(), id)
		return x != nil && x.State == store.StateWritten
	})
	want, err := os.ReadFile(filepath.Join(tc.c.SampleDir(), fileName))
	if err != nil {
		t.Fatal(err)
	}

	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	out := t.TempDir()
	// Dial by IP and verify the collector's certificate against its DNS name, as --server-name documents.
	got := runPythonExample(t, py, "--addr", tc.addr, "--server-name", "localhost",
		"--ca", reader.CAFile, "--cert", reader.CertFile, "--key", reader.KeyFile, "--out", out)

	// The listing: one sample, its id, host, state, flow count, size and file name on one row.
	if !strings.HasPrefix(got, "1 sample\n") {
		t.Errorf("output does not report 1 sample")
	}
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+web01\s+2023-11-14T22:14:00Z\s+1\s+written\s+5\s+` +
		fmt.Sprint(len(want)) + `\s+` + regexp.QuoteMeta(fileName) + `$`)
	if !row.MatchString(got) {
		t.Errorf("no listing row for sample %s (web01, written, 5 flows, %d bytes, %s)", id, len(want), fileName)
	}
	// The download: the same bytes the collector wrote.
	if !strings.Contains(got, fmt.Sprintf("downloaded %s: %d bytes -> %s\n", fileName, len(want), filepath.Join(out, fileName))) {
		t.Errorf("output does not report the download of %s (%d bytes)", fileName, len(want))
	}
	if !strings.Contains(got, fmt.Sprintf("fileName %s, trafficDate 1700000040.5, 5 BayseFlows\n", fileName)) {
		t.Errorf("output does not summarise the .bf (fileName, trafficDate, 5 BayseFlows)")
	}
	if dl, err := os.ReadFile(filepath.Join(out, fileName)); err != nil || !bytes.Equal(dl, want) {
		t.Errorf("downloaded .bf differs from the collector's file (%v)", err)
	}
	// The flows: five, in the sensor's order, each printed; the escape character shown escaped.
	if !strings.Contains(got, "flows of sample "+id+" (host web01, 5 flows):\n") || !strings.HasSuffix(got, "\n5 flows\n") {
		t.Errorf("output does not announce and count 5 flows")
	}
	for i := 0; i < 5; i++ {
		name := "example.com"
		if i == 4 {
			name = `evil\x1b[31m.example`
		}
		line := fmt.Sprintf("%5d  TCP   10.0.0.5:%d -> %s (93.184.216.34:443, passive)  pkts 3/2  bytes %d/1000", i+1, 40000+i, name, 100+i%3)
		if !strings.Contains(got, line) {
			t.Errorf("flow %d not printed as %q", i+1, line)
		}
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("output contains a raw ESC from a flow's dst_name")
	}

	// A sample larger than one GetSampleContent chunk (64 KiB), chosen with --sample: the download is
	// the whole file, and ListSampleFlows's flows are all counted.
	ws2 := ws + 60
	s.send(3, testFlows(ws2, 600, 0))
	if seq, dup := s.ack(); dup || seq != 3 {
		t.Fatalf("ack of batch 3: seq %d dup %v", seq, dup)
	}
	s.endWindow(ws2, 60, 0)
	id2, fileName2 := closer.SampleName("web01", ws2, 1)
	waitFor(t, "the second sample to be written", func() bool {
		x, _ := tc.st.GetSample(context.Background(), id2)
		return x != nil && x.State == store.StateWritten
	})
	want2, err := os.ReadFile(filepath.Join(tc.c.SampleDir(), fileName2))
	if err != nil {
		t.Fatal(err)
	}
	if len(want2) <= 2*64*1024 {
		t.Fatalf("second sample is %d bytes; the test wants more than two chunks", len(want2))
	}
	got = runPythonExample(t, py, "--addr", tc.addr, "--server-name", "localhost",
		"--ca", reader.CAFile, "--cert", reader.CertFile, "--key", reader.KeyFile, "--out", out,
		"--sample", id2, "--max-flows", "2")
	if !strings.HasPrefix(got, "2 samples\n") {
		t.Errorf("output does not report 2 samples")
	}
	if dl, err := os.ReadFile(filepath.Join(out, fileName2)); err != nil || !bytes.Equal(dl, want2) {
		t.Errorf("downloaded %s differs from the collector's file (%v)", fileName2, err)
	}
	for _, want := range []string{
		fmt.Sprintf("downloaded %s: %d bytes", fileName2, len(want2)),
		"600 BayseFlows\n",
		"flows of sample " + id2 + " (host web01, 600 flows):\n",
		"    2  TCP   10.0.0.5:40001 -> example.com",
		"  ... 598 more\n600 flows\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// runPythonExample runs list_samples.py with args and returns its standard output; the test fails if it
// exits non-zero.
func runPythonExample(t *testing.T, py string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-B", pythonExample}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", pythonExample, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("%s %s:\n%s", pythonExample, strings.Join(args, " "), stdout.String())
	return stdout.String()
}
