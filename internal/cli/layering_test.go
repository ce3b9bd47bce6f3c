package cli

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The command layer's rule (docs/architecture.md, Configuration and commands): cobra, viper and pflag
// are imported only by
//
//   - cmd/... (the mains),
//   - internal/cli (this package: settings, version flag),
//   - internal/ctl (flowctl's command tree),
//   - internal/configdoc (renders docs/config.md from the command trees),
//   - the command files of the collector and the sensor: internal/collector/command.go and
//     internal/sensor/command.go, and their tests command_test.go.
//
// Everything else, domain code and libraries (internal/pki included), takes typed configuration.
var commandLayer = []string{"cmd/", "internal/cli/", "internal/ctl/", "internal/configdoc/",
	"internal/collector/command.go", "internal/collector/command_test.go",
	"internal/sensor/command.go", "internal/sensor/command_test.go"}

var commandLibraries = []string{"github.com/spf13/cobra", "github.com/spf13/viper", "github.com/spf13/pflag"}

// TestNoCobraOrViperBelowTheCommandLayer reads the imports of every Go file of the module (gen/ and
// hidden or work directories aside) and fails on a command library imported outside the command layer.
func TestNoCobraOrViperBelowTheCommandLayer(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root is not at %s: %v", root, err)
	}
	files, allowed := 0, 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "gen" || rel == "work" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !isCommandLibrary(p) {
				continue
			}
			if inCommandLayer(rel) {
				allowed++
				continue
			}
			t.Errorf("%s imports %s: only the command layer may (%v); pass typed configuration instead", rel, p, commandLayer)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the module and the command layer's own imports, or it proved nothing.
	if files < 100 || allowed < 5 {
		t.Fatalf("read %d files, %d allowed command-library imports: the walk missed the module", files, allowed)
	}
}

func isCommandLibrary(path string) bool {
	for _, l := range commandLibraries {
		if path == l || strings.HasPrefix(path, l+"/") {
			return true
		}
	}
	return false
}

func inCommandLayer(rel string) bool {
	for _, a := range commandLayer {
		if rel == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(rel, a)) {
			return true
		}
	}
	return false
}
