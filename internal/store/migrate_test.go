package store_test

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

// atVersion runs fn, for SQLite and PostgreSQL, on a database migrated up to version only (fn's db)
// whose DSN store.Open takes for the remaining migrations.
func atVersion(t *testing.T, version int64, fn func(t *testing.T, ctx context.Context, db *sql.DB, dsn string)) {
	for name, c := range map[string]struct {
		dsn     func(t *testing.T) string
		driver  string
		dialect goose.Dialect
		dir     string
	}{
		"sqlite":   {func(t *testing.T) string { return filepath.Join(t.TempDir(), "old.db") }, "sqlite", goose.DialectSQLite3, "migrations/sqlite"},
		"postgres": {func(t *testing.T) string { return storetest.PostgresDSN(t) }, "pgx", goose.DialectPostgres, "migrations/postgres"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := c.dsn(t)
			db, err := sql.Open(c.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			sub, _ := fs.Sub(store.MigrationsFS, c.dir)
			p, err := goose.NewProvider(c.dialect, db, sub)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, version); err != nil {
				t.Fatal(err)
			}
			fn(t, ctx, db, dsn)
		})
	}
}

// A database made before migration 3 keeps its samples' content and flows when it is opened (they move
// to sample_data).
func TestMigrateMovesSampleData(t *testing.T) {
	atVersion(t, 2, func(t *testing.T, ctx context.Context, db *sql.DB, dsn string) {
		q := `INSERT INTO samples (id, host, window_start, window_seconds, revision, flow_count, bytes, state, file_name,
				content, flows, created_at, updated_at) VALUES ('h_60', 'h', 60, 60, 1, 1, 3, 'written', 'h_60.bf', $1, $2, 1, 1)`
		if _, err := db.ExecContext(ctx, q, []byte("bf!"), []byte("flows")); err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		content, err := st.SampleContent(ctx, "h_60")
		if err != nil || string(content) != "bf!" {
			t.Fatalf("content after migrating: %q, %v", content, err)
		}
		flows, err := st.SampleFlows(ctx, "h_60")
		if err != nil || string(flows) != "flows" {
			t.Fatalf("flows after migrating: %q, %v", flows, err)
		}
		if x, err := st.GetSample(ctx, "h_60"); err != nil || x.Bytes != 3 {
			t.Fatalf("sample after migrating: %+v, %v", x, err)
		}
	})
}

// A database made before migration 4 (retention) keeps its windows: a closed window's batches can be
// pruned, and a late batch then builds on its sample.
func TestMigrateRetention(t *testing.T) {
	atVersion(t, 3, func(t *testing.T, ctx context.Context, db *sql.DB, dsn string) {
		for _, q := range []string{
			`INSERT INTO windows (host, window_start, window_seconds, state, last_batch_at, revision, flow_count)
					VALUES ('h', 60, 60, 'closed', 120000, 1, 1)`,
			`INSERT INTO window_batches (host, window_start, stream_id, seq, flow_count, flows, received_at)
					VALUES ('h', 60, 's', 1, 1, 'old', 120000)`,
			`INSERT INTO samples (id, host, window_start, window_seconds, revision, flow_count, bytes, state, file_name,
					content, flows, created_at, updated_at) VALUES ('h_60', 'h', 60, 60, 1, 1, 3, 'written', 'h_60.bf', '', '', 1, 1)`,
			`INSERT INTO sample_data (id, content, flows) VALUES ('h_60', 'bf!', 'old')`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		res, err := st.PruneBatches(ctx, store.PruneRequest{Before: time.Unix(3600, 0), Now: time.Unix(3600, 0)})
		if err != nil || res.Windows != 1 || res.Batches != 1 {
			t.Fatalf("prune after migrating: %+v, %v", res, err)
		}
		if _, err := st.SaveBatches(ctx, []store.Batch{{Host: "h", StreamID: "s", Seq: 2, Received: time.Unix(7200, 0),
			Parts: []store.BatchPart{{WindowStart: 60, WindowSeconds: 60, FlowCount: 1, Flows: []byte("late")}}}}); err != nil {
			t.Fatal(err)
		}
		var got store.WindowContent
		x, err := st.CloseWindow(ctx, store.WindowRef{Host: "h", WindowStart: 60, WindowSeconds: 60}, func(c store.WindowContent) (store.NewSample, error) {
			got = c
			return store.NewSample{ID: "h_60_r2", FileName: "h_60_r2.bf", State: store.StateWritten, Content: []byte("x"), Flows: []byte("x")}, nil
		})
		if err != nil || x == nil || x.Revision != 2 || got.BaseRevision != 1 || len(got.Batches) != 2 ||
			string(got.Batches[0]) != "old" || string(got.Batches[1]) != "late" {
			t.Fatalf("late batch after migrating and pruning: %+v, %v; content %+v", x, err, got)
		}
	})
}

// A database made before migration 5 keeps its samples readable: flows stored whole (no chunks, so
// readers fall back to SampleFlows), no write error, no drops; its open windows close and are bounded.
func TestMigrateWindowLimits(t *testing.T) {
	atVersion(t, 4, func(t *testing.T, ctx context.Context, db *sql.DB, dsn string) {
		for _, q := range []string{
			`INSERT INTO samples (id, host, window_start, window_seconds, revision, flow_count, bytes, state, file_name,
					content, flows, created_at, updated_at) VALUES ('h_60', 'h', 60, 60, 1, 1, 3, 'written', 'h_60.bf', '', '', 1, 1)`,
			`INSERT INTO sample_data (id, content, flows) VALUES ('h_60', 'bf!', 'whole')`,
			`INSERT INTO windows (host, window_start, window_seconds, state, last_batch_at, revision, flow_count)
					VALUES ('h', 120, 60, 'open', 120000, 0, 2)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if chunks, err := st.SampleFlowChunks(ctx, "h_60", 0, 1); err != nil || len(chunks) != 0 {
			t.Fatalf("chunks of an old sample: %q, %v; want none", chunks, err)
		}
		if flows, err := st.SampleFlows(ctx, "h_60"); err != nil || string(flows) != "whole" {
			t.Fatalf("flows of an old sample: %q, %v", flows, err)
		}
		if x, err := st.GetSample(ctx, "h_60"); err != nil || x.WriteError != "" || x.FlowsDropped != 0 {
			t.Fatalf("old sample: %+v, %v", x, err)
		}
		due, err := st.DueWindows(ctx, time.Unix(3600, 0), 0, 10)
		if err != nil || len(due) != 1 || due[0].WindowStart != 120 {
			t.Fatalf("old open window not due: %v, %v", due, err)
		}
		b := store.Batch{Host: "h", StreamID: "s", Seq: 1, Received: time.Unix(3600, 0), Limits: store.WindowLimits{MaxFlows: 3},
			Parts: []store.BatchPart{{WindowStart: 120, WindowSeconds: 60, FlowCount: 2, Flows: []byte("ab"), FlowEnds: []int{1, 2}}}}
		if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil || b.Parts[0].Dropped != 1 {
			t.Fatalf("bound on an old window (2 flows held, room for 1): dropped %d, %v", b.Parts[0].Dropped, err)
		}
	})
}
