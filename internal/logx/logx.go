// Package logx builds the slog logger every FlowFleet program uses, from --log-format and --log-level.
package logx

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a text or JSON logger at the given level (ParseLevel). Every program builds its logger
// here, from its --log-format and --log-level.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// ParseLevel reads a log level: debug, info (also ""), warn (also warning) or error, in any case and
// with spaces around, or slog's own forms such as "INFO+2".
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "warning":
		return slog.LevelWarn, nil
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(s)))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return lvl, nil
}
