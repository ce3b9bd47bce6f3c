package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

// rawStores runs fn on a SQLite and (when FLOWFLEET_TEST_POSTGRES is set) a PostgreSQL store, with a
// plain connection to the same database for what the Store interface cannot do: damage it.
func rawStores(t *testing.T, fn func(t *testing.T, st store.Store, db *sql.DB)) {
	for name, c := range map[string]struct {
		dsn    func(t *testing.T) string
		driver string
	}{
		"sqlite":   {func(t *testing.T) string { return filepath.Join(t.TempDir(), "x.db") }, "sqlite"},
		"postgres": {func(t *testing.T) string { return storetest.PostgresDSN(t) }, "pgx"},
	} {
		t.Run(name, func(t *testing.T) {
			dsn := c.dsn(t)
			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			db, err := sql.Open(c.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fn(t, st, db)
		})
	}
}

func closeInto(t *testing.T, st store.Store, host string, ws int64, seq uint64, payload string) (*store.Sample, store.WindowContent) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.SaveBatches(ctx, []store.Batch{{Host: host, StreamID: "s", Seq: seq, Received: time.Unix(ws+60, 0),
		Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte(payload)}}}}); err != nil {
		t.Fatal(err)
	}
	var got store.WindowContent
	x, err := st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60}, func(c store.WindowContent) (store.NewSample, error) {
		got = c
		id := fmt.Sprintf("%s_%d", host, ws)
		if c.Revision > 1 {
			id += fmt.Sprintf("_r%d", c.Revision)
		}
		return store.NewSample{ID: id, FileName: id + ".bf", State: store.StateWritten, Content: []byte("bf"), Flows: []byte(payload)}, nil
	})
	if err != nil || x == nil {
		t.Fatalf("close: %+v, %v", x, err)
	}
	return x, got
}

// A sample whose window row is gone is still deleted at the retention.
func TestPruneOrphanSample(t *testing.T) {
	rawStores(t, func(t *testing.T, st store.Store, db *sql.DB) {
		ctx := context.Background()
		x, _ := closeInto(t, st, "h", 600, 1, "a")
		closeInto(t, st, "h", 6000, 2, "b")
		if _, err := db.ExecContext(ctx, `DELETE FROM windows WHERE window_start = 600`); err != nil {
			t.Fatal(err)
		}
		res, err := st.PruneSamples(ctx, store.PruneRequest{Before: time.Unix(3600, 0), Now: time.Now()})
		if err != nil || res.Windows != 0 || len(res.Samples) != 1 || res.Samples[0].ID != x.ID || res.Samples[0].FileName != x.FileName {
			t.Fatalf("pruned %+v, %v; want the orphan %s", res, err, x.ID)
		}
		if _, err := st.SampleContent(ctx, x.ID); err == nil {
			t.Fatal("the orphan's content is still there")
		}
	})
}

// A late batch for a pruned window whose base sample is gone makes a revision of the late flows only,
// and says so (Pruned, BaseRevision 0).
func TestLateBatchAfterPruneBaseMissing(t *testing.T) {
	rawStores(t, func(t *testing.T, st store.Store, db *sql.DB) {
		ctx := context.Background()
		x, _ := closeInto(t, st, "h", 600, 1, "a")
		if res, err := st.PruneBatches(ctx, store.PruneRequest{Before: time.Unix(3600, 0), Now: time.Unix(3600, 0)}); err != nil || res.Windows != 1 {
			t.Fatalf("prune: %+v, %v", res, err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM sample_data WHERE id = '`+x.ID+`'`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM samples WHERE id = '`+x.ID+`'`); err != nil {
			t.Fatal(err)
		}
		s2, c := closeInto(t, st, "h", 600, 2, "late")
		if !c.Pruned || c.BaseRevision != 0 || len(c.Batches) != 1 || string(c.Batches[0]) != "late" || s2.Revision != 2 {
			t.Fatalf("close with the base gone: %+v, content %+v", s2, c)
		}
	})
}
