package storetest

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/internal/store"
)

// rawDB opens the suite's database directly, beside the store, to do what no store method does
// (damage it).
func (e *env) rawDB() (db *sql.DB, postgres bool) {
	e.t.Helper()
	postgres = strings.HasPrefix(e.dsn, "postgres://") || strings.HasPrefix(e.dsn, "postgresql://")
	var err error
	if postgres {
		db, err = sql.Open("pgx", e.dsn)
	} else {
		db, err = sql.Open("sqlite", "file:"+e.dsn+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db, postgres
}

// testContentChecksum: content changed in the database after it was written (same length or not) is
// reported as ErrCorrupt, never returned; intact content is; content recorded before checksums
// existed (NULL) is returned unchecked.
func testContentChecksum(t *testing.T, e *env) {
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0), batch("h1", "s", 2, at(0), 1, w1), batch("h1", "s", 3, at(0), 1, w2))
	var ids []string
	for _, w := range []int64{w0, w1, w2} {
		s, _ := closeWindow(t, e.st, ref("h1", w))
		ids = append(ids, s.ID)
	}
	db, pg := e.rawDB()
	exec := func(query string, args ...any) {
		t.Helper()
		if pg {
			query = strings.NewReplacer("?1", "$1", "?2", "$2").Replace(query)
		}
		if _, err := db.ExecContext(ctx(t), query, args...); err != nil {
			t.Fatal(err)
		}
	}
	want := "content of " + ids[0]
	flipped := []byte(want)
	flipped[3] ^= 0x20 // one bit, same length
	exec("UPDATE sample_data SET content = ?1 WHERE id = ?2", flipped, ids[0])
	exec("UPDATE sample_data SET content = ?1 WHERE id = ?2", []byte("short"), ids[1])
	for _, id := range ids[:2] {
		got, err := e.st.SampleContent(ctx(t), id)
		if !errors.Is(err, store.ErrCorrupt) || got != nil {
			t.Errorf("damaged sample %s: %q, %v; want ErrCorrupt and no bytes", id, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), id) {
			t.Errorf("the error does not name the sample: %v", err)
		}
	}
	if got, err := e.st.SampleContent(ctx(t), ids[2]); err != nil || string(got) != "content of "+ids[2] {
		t.Errorf("intact sample: %q, %v", got, err)
	}
	// A sample recorded before migration 00007 has no checksum: served as stored.
	exec("UPDATE sample_data SET content_sha256 = NULL, content = ?1 WHERE id = ?2", []byte("legacy"), ids[1])
	if got, err := e.st.SampleContent(ctx(t), ids[1]); err != nil || string(got) != "legacy" {
		t.Errorf("sample without checksum: %q, %v", got, err)
	}
}

// testStatsAndProbe: Stats says a store is new on its first open only, and counts samples; the write
// probe commits, again and again (one row per collector).
func testStatsAndProbe(t *testing.T, e *env) {
	st, err := e.st.Stats(ctx(t))
	if err != nil || !st.Created || st.Samples != 0 || (st.Backend != "sqlite" && st.Backend != "postgres") {
		t.Fatalf("first open: %+v, %v; want a new, empty store", st, err)
	}
	for i := 0; i < 3; i++ {
		if err := e.st.CheckWritable(ctx(t), "c1"); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	if err := e.st.CheckWritable(ctx(t), "c2"); err != nil {
		t.Fatal(err)
	}
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0), batch("h1", "s", 2, at(0), 1, w1))
	closeWindow(t, e.st, ref("h1", w0))
	closeWindow(t, e.st, ref("h1", w1))
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	again := e.open()
	st, err = again.Stats(ctx(t))
	if err != nil || st.Created || st.Samples != 2 {
		t.Fatalf("reopened: %+v, %v; want an existing store with 2 samples", st, err)
	}
	db, _ := e.rawDB()
	insert := "INSERT INTO health_probe (collector, probed_at) VALUES ('old-pod', 0)"
	if _, err := db.ExecContext(ctx(t), insert); err != nil {
		t.Fatal(err)
	}
	if err := again.CheckWritable(ctx(t), "c1"); err != nil { // also removes rows a day old
		t.Fatal(err)
	}
	var rows int
	if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM health_probe").Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("health_probe holds %d rows (%v), want one per live collector (2)", rows, err)
	}
}
