package store_test

import (
	"path/filepath"
	"testing"

	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) string { return filepath.Join(t.TempDir(), "flowfleet.db") })
}

// TestPostgres runs the suite on the server named by FLOWFLEET_TEST_POSTGRES (skipped when unset), each
// test in a schema of its own.
func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) string { return storetest.PostgresDSN(t) })
}
