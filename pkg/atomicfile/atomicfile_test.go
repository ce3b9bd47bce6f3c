package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Both atomic writers replace a file whole or not at all, and leave no temporary file behind.
func TestAtomicWritersReplaceWholeOrNothing(t *testing.T) {
	for name, writeFile := range map[string]func(string, os.FileMode, func(io.Writer) error) error{
		"synced": WriteFunc, "replace": ReplaceFunc,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.bf")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := writeFile(path, 0o644, func(w io.Writer) error {
			_, _ = w.Write([]byte("half of the new"))
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("%s: %v, want boom", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != "old" {
			t.Errorf("%s: after a failed write the file holds %q", name, b)
		}
		if err := writeFile(path, 0o600, func(w io.Writer) error {
			_, err := w.Write([]byte("new"))
			return err
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != "new" {
			t.Errorf("%s: file holds %q, want new", name, b)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v", name, st.Mode(), err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%s: %d files in the directory, want only the output", name, len(entries))
		}
	}
}
