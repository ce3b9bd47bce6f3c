//go:build unix

package collector

import (
	"math"
	"syscall"
)

// openFileLimit is the process's soft open-file limit (Go raises it to the hard limit at start).
func openFileLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= math.MaxInt32 {
		return 0, false // unlimited, or more than any limit here could use
	}
	return rl.Cur, true
}
