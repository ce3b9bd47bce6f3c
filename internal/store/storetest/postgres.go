// Package storetest is a conformance suite for store.Store, run against every backend (SQLite in a
// temporary directory, and PostgreSQL when FLOWFLEET_TEST_POSTGRES names a server), and helpers that
// give tests a fresh PostgreSQL schema. Only tests import it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
)

// PostgresEnv names the environment variable holding the DSN of a PostgreSQL server the tests may use
// (any database in it: each test makes and drops its own schema). scripts/postgres.sh starts one:
//
//	export FLOWFLEET_TEST_POSTGRES=$(scripts/postgres.sh)
const PostgresEnv = "FLOWFLEET_TEST_POSTGRES"

// PostgresDSN returns the DSN of a fresh, empty schema on the server named by FLOWFLEET_TEST_POSTGRES
// (search_path set to it), dropped when the test ends. It skips the test when the variable is unset.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against (start one with: export %s=$(scripts/postgres.sh))",
			PostgresEnv, PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s=%q is not a postgres:// URL", PostgresEnv, base)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "fftest_" + hex.EncodeToString(rnd[:])

	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("%s: create schema: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
