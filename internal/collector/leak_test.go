package collector

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: every collector goroutine (ingest
// streams, window closer, relay, pruner, metrics server) must end with Run or the test's cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
