package store_test

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

// A database made before migration 3 keeps its samples' content and flows when it is opened (they move
// to sample_data).
func TestMigrateMovesSampleData(t *testing.T) {
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
			if _, err := p.UpTo(ctx, 2); err != nil {
				t.Fatal(err)
			}
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
}
