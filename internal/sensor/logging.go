package sensor

import (
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
)

// Version is the sensor's software version, sent in each Hello; set it at build time with
// -ldflags "-X github.com/flowfleet/flowfleet/internal/sensor.Version=v1.2.3". When empty, the module
// version from the build information is used, or "dev".
var Version string

// SoftwareVersion returns Version or its fallback (always 1–64 printable ASCII characters).
func SoftwareVersion() string {
	v := Version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	var b strings.Builder
	for _, r := range v {
		if r >= ' ' && r <= '~' && b.Len() < 64 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "dev"
	}
	return b.String()
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q: want debug, info, warn or error", s)
}

// NewLogger returns a logger writing to w in format ("text" or "json") at level.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lv, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q: want text or json", format)
}
