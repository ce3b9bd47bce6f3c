// Package buildinfo holds FlowFleet's one software version and the ways the three programs show it:
// `--version`, a `version` subcommand and the flowfleet_build_info metric.
//
// The version is stamped at build time by scripts/build.sh from `git describe`:
//
//	go build -ldflags "-X github.com/flowfleet/flowfleet/internal/buildinfo.version=v1.2.3" ./cmd/...
//
// A binary built without the stamp (go build, go run, go install) reports its module version, else the
// VCS revision Go recorded (with "-dirty" for a modified tree), else "dev".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// version is set with -ldflags -X (scripts/build.sh).
var version string

// MaxLen bounds the version string: it is sent to collectors in every Hello (the proto allows 64).
const MaxLen = 64

// Version returns the software version: 1 to MaxLen printable ASCII characters.
func Version() string {
	if v := clean(version); v != "" {
		return v
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := clean(bi.Main.Version); v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev = clean(rev); rev == "" {
		return "dev"
	}
	rev = rev[:min(len(rev), 12)]
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// clean keeps the printable ASCII of v, at most MaxLen characters, without surrounding spaces.
func clean(v string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(v) {
		if r >= ' ' && r <= '~' && b.Len() < MaxLen {
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// String is the one line `--version` and `version` print: "<program> <version> (<go version> <os>/<arch>)".
func String(program string) string {
	return fmt.Sprintf("%s %s (%s %s/%s)", program, Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// NewCollector returns the flowfleet_build_info gauge: always 1, with the version, Go version and
// program as labels, as Prometheus exporters conventionally report their build.
func NewCollector(program string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "flowfleet_build_info",
		Help:        "Always 1; the labels say which FlowFleet build runs.",
		ConstLabels: prometheus.Labels{"program": program, "version": Version(), "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
