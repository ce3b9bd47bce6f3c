package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCleanBoundsAndStrips(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                      "v1.2.3",
		"  v1.2.3\n":                  "v1.2.3",
		"v1\x00.2\u00e9":              "v1.2",
		strings.Repeat("a", 100):      strings.Repeat("a", MaxLen),
		"\t\n":                        "",
		"v0.1.0-3-gabcdef0-dirty":     "v0.1.0-3-gabcdef0-dirty",
		"<script>alert(1)</script>\r": "<script>alert(1)</script>",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionUsesTheStamp(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7"
	if got := Version(); got != "v9.8.7" {
		t.Fatalf("Version() = %q with the stamp v9.8.7", got)
	}
	version = ""
	if got := Version(); got == "" || len(got) > MaxLen {
		t.Fatalf("Version() without a stamp = %q, want 1–%d characters", got, MaxLen)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v1.0.0"
	want := `
# HELP flowfleet_build_info Always 1; the labels say which FlowFleet build runs.
# TYPE flowfleet_build_info gauge
flowfleet_build_info{goversion="` + runtime.Version() + `",program="sensor",version="v1.0.0"} 1
`
	if err := testutil.CollectAndCompare(NewCollector("sensor"), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestBuildScriptStampsEveryProgram builds the three programs with scripts/build.sh, as the demo and
// packages do, and asks each for its version both ways.
func TestBuildScriptStampsEveryProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three programs; skipped in -short mode")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts/build.sh"), "-o", out)
	cmd.Env = append(os.Environ(), "FLOWFLEET_VERSION=v0.0.0-test.1", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, b)
	}
	for _, prog := range []string{"collector", "sensor", "flowctl"} {
		for _, args := range [][]string{{"--version"}, {"version"}} {
			b, err := exec.Command(filepath.Join(out, prog), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", prog, args, err, b)
			}
			want := prog + " v0.0.0-test.1 (" + runtime.Version() + " "
			if !strings.HasPrefix(string(b), want) {
				t.Errorf("%s %v printed %q, want it to start with %q", prog, args, b, want)
			}
		}
	}
	// Without FLOWFLEET_VERSION the script stamps git describe's answer.
	describe, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("git describe failed (%v): not a git checkout, so the script stamps \"dev\"", err)
	}
	b, err := exec.Command("bash", filepath.Join(root, "scripts/build.sh"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), strings.TrimSpace(string(describe)); got != want {
		t.Errorf("scripts/build.sh --version = %q, git describe = %q", got, want)
	}
}
