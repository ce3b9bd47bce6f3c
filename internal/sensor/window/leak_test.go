package window_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: a Windower's emitter ends with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
