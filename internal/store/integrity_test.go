package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// A SQLite file whose b-tree pages were overwritten fails Open with an error that says the file is
// damaged and what to do, instead of starting and serving (or writing into) damaged pages.
func TestOpenRefusesDamagedSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "flowfleet.db")
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 { // enough rows for the tables to span many pages
		b := store.Batch{Host: fmt.Sprintf("host-%03d", i), StreamID: "s", Seq: 1, Received: time.Now(),
			Parts: []store.BatchPart{{WindowStart: 60, WindowSeconds: 60, FlowCount: 1, Flows: []byte(strings.Repeat("f", 500))}}}
		if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatal("the WAL is still there after Close: damaging the main file would not be seen")
	}
	// Reopening the intact file works (and says it is not new).
	st, err = store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := st.Stats(ctx); err != nil || s.Created {
		t.Fatalf("reopened intact store: %+v, %v", s, err)
	}
	st.Close()

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	const page = 4096
	if fi.Size() < 8*page {
		t.Fatalf("database of %d bytes: too small for the test", fi.Size())
	}
	garbage := []byte(strings.Repeat("\xa5\x5a", 8)) // over each b-tree page's header, past the file header page
	for off := int64(2 * page); off < fi.Size(); off += 3 * page {
		if _, err := f.WriteAt(garbage, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	st, err = store.Open(ctx, path)
	if err == nil {
		st.Close()
		t.Fatal("a damaged SQLite file opened without an error")
	}
	for _, want := range []string{"integrity check", path, "restore it from a backup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
