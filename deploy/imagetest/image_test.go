// Package imagetest builds FlowFleet's container images with scripts/image.sh (podman, offline, FROM
// scratch) and runs each program's --version inside its image with no network. Without podman it skips,
// saying why (scripts/setup.sh installs it).
package imagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "image.sh")); err != nil {
		t.Fatalf("repository root not found from the test directory: %v", err)
	}
	return root
}

// runArgs are podman run's options: no network, and limits no higher than the caller's (podman would
// otherwise raise RLIMIT_NOFILE and RLIMIT_NPROC, which a sandboxed CI host refuses). runc is preferred
// when installed: crun refuses hosts with a hybrid cgroup v1/v2 layout.
func runArgs() []string {
	args := []string{"run", "--rm", "--network=none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	if _, err := exec.LookPath("runc"); err == nil {
		args = append([]string{"--runtime", "runc"}, args...)
	}
	return args
}

func TestImagesRunVersion(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("SKIP: podman is not installed (scripts/setup.sh installs it with runc); the images cannot be built here")
	}
	root := repoRoot(t)
	// The version first, passed on, so that the images carry exactly it even if the tree changes.
	v := exec.Command("bash", filepath.Join(root, "scripts", "build.sh"), "--version")
	v.Dir = root
	vout, err := v.Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(vout))
	prefix := "flowfleet-imagetest/"
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "image.sh"), "--prefix", prefix)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "FLOWFLEET_VERSION="+version)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, stderr.String())
	}
	images := strings.Fields(string(out))
	t.Cleanup(func() { _ = exec.Command("podman", append([]string{"rmi", "--force"}, images...)...).Run() })
	tag := strings.ReplaceAll(version, "+", "_")

	if len(images) != 3 {
		t.Fatalf("scripts/image.sh printed %q, want three image names", out)
	}
	for i, prog := range []string{"collector", "sensor", "flowctl"} {
		want := prefix + prog + ":" + tag
		if images[i] != want {
			t.Errorf("image %d is %s, want %s", i, images[i], want)
			continue
		}
		// Nothing but the one binary and the licence: FROM scratch, a non-root user.
		insp, err := exec.Command("podman", "image", "inspect", "--format", "{{.Config.User}} {{len .RootFS.Layers}}", want).Output()
		if err != nil {
			t.Fatalf("podman image inspect %s: %v", want, err)
		}
		if got := strings.TrimSpace(string(insp)); got != "65532:65532 1" {
			t.Errorf("%s: user and layer count %q, want \"65532:65532 1\" (one layer: the binary and the licence)", want, got)
		}
		run, err := exec.Command("podman", append(runArgs(), want, "--version")...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman run %s --version: %v\n%s", want, err, run)
		}
		if !strings.HasPrefix(string(run), prog+" "+version+" (") {
			t.Errorf("%s --version printed %q, want %q", want, run, prog+" "+version+" (…)")
		}
	}
}

// The image's sensor is the cgo-free build: its AF_PACKET source (a plain packet socket) and filter
// compiler replace gopacket's ring and libpcap. The capture package's network-namespace tests must pass
// on that build too; they need root (CI's user), and the race detector, which needs cgo, stays off.
func TestStaticSensorCaptureTests(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the capture tests make network namespaces, which needs root (CI runs as root)")
	}
	root := repoRoot(t)
	cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "AFPacket|RawFilter", "./internal/sensor/capture/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("CGO_ENABLED=0 go test ./internal/sensor/capture/: %v\n%s", err, out)
	}
	for _, name := range []string{"TestCaptureNetnsAFPacketInterface", "TestCaptureNetnsAFPacketAny", "TestCaptureNetnsAFPacketAnyExcluded", "TestRawFilterSemantics"} {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass on the cgo-free build:\n%s", name, out)
		}
	}
}
