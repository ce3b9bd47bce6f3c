package sagefake_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: a hung or cut request's handler must return once its client has given up.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
