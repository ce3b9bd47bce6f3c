// Package pkg_test holds the layering check of the public packages: pkg/ stands alone, so the arrow
// between pkg/ and the rest of the module runs one way (internal/ may import pkg/, never the reverse).
// Helpers that only pkg/ needs live in pkg/internal/.
package pkg_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/flowfleet/flowfleet"

// TestPkgImportsNoInternal lists every package that pkg/... (tests included) depends on and fails on any
// package of this module's internal/ tree; pkg/internal/... is allowed.
func TestPkgImportsNoInternal(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the dependencies of pkg/: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-test", "-f", "{{.ImportPath}}", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -test ./... in pkg/: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		// Test variants are listed as "path [path.test]".
		path, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if path == "" || seen[path] {
			continue
		}
		seen[path] = true
		if strings.HasPrefix(path, module+"/internal/") || path == module+"/internal" {
			t.Errorf("a pkg/ package depends on %s: move what it needs under pkg/ (pkg/internal/ if only pkg/ uses it)", path)
		}
	}
	// The listing must have covered pkg/ and its own internal tree, or the check above proved nothing.
	for _, want := range []string{module + "/pkg/flow", module + "/pkg/internal/pytext"} {
		if !seen[want] {
			t.Errorf("go list did not report %s; the listing is not of pkg/...", want)
		}
	}
}
