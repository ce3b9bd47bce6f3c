package capture_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: a capture source's reader and statistics goroutines end with its Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
