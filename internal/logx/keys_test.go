package logx

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// errorKey matches a log attribute named "error" (the key is "err" in every component).
var errorKey = regexp.MustCompile(`slog\.(String|Any)\("error",|\.(Debug|Info|Warn|Error|Log)\(.*, "error", `)

// Every component logs errors under "err": no slog call under internal/ or cmd/ uses "error".
func TestErrorKeyIsErr(t *testing.T) {
	files := 0
	for _, root := range []string{"../../internal", "../../cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || d.Name() == "keys_test.go" {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for i, line := range strings.Split(string(b), "\n") {
				if errorKey.MatchString(line) {
					t.Errorf("%s:%d: log key \"error\"; use \"err\"", path, i+1)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 100 {
		t.Fatalf("read %d Go files: the walk missed the tree", files)
	}
	if !errorKey.MatchString(`log.Warn("x", slog.String("error", err.Error()))`) {
		t.Fatal("the pattern misses the old key")
	}
}
