package spool_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: the spool runs no goroutine of its own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
