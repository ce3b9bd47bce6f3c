package convert

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// detectDir holds small logs in the shapes of the Zeek project's test baselines (written for this
// test, not copied): TSV with the #separator header, JSON lines, a Bro-era space-separated conn.log
// without headers, a dns.log, a log of another kind, and the same content under other extensions.
var detectDir = filepath.Join("testdata", "detect")

func readDetect(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(detectDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDetectZeekAgreesWithReference: format detection calls a text a Zeek log exactly when the
// reference's rule accepts it as one (R-ZEEK-1: libmagic says "ASCII text" → TSV, or JSON → JSON), the
// extension playing no part; what the reference refuses by file type is refused with R-ZEEK-1 named.
func TestDetectZeekAgreesWithReference(t *testing.T) {
	tsv := readDetect(t, "conn.log")
	long := append(bytes.Clone(tsv), []byte("#comment\t"+strings.Repeat("x", 300)+"\n")...)
	for _, c := range []struct {
		name string
		data []byte
		want Format // "" for refused
		rule string // why, for the failure message
	}{
		{"conn.log", tsv, FormatZeek, "R-ZEEK-1 ASCII text → TSV"},
		{"dns.log", readDetect(t, "dns.log"), FormatZeek, "R-ZEEK-1: the rule looks at the type, not at which log"},
		{"conn.json.log", readDetect(t, "conn.json.log"), FormatZeek, "R-ZEEK-1 JSON (lines over 300 characters are fine in JSON)"},
		{"dns.json.log", readDetect(t, "dns.json.log"), FormatZeek, "R-ZEEK-1 JSON"},
		{"loaded_scripts.json", readDetect(t, "loaded_scripts.json"), FormatZeek, "R-ZEEK-1 JSON without Zeek's conn fields: read, no records (R-ZEEK-3)"},
		{"bro_conn.log", readDetect(t, "bro_conn.log"), FormatZeek, "R-ZEEK-1 ASCII text; R-ZEEK-2 splits on TAB, so no records"},
		{"bro_conn.txt", readDetect(t, "bro_conn.txt"), FormatZeek, "R-ZEEK-1 goes by content, not by extension"},
		{"baseline_header.log", readDetect(t, "baseline_header.log"), FormatZeek, "R-ZEEK-2 skips # lines"},
		{"conn.log, CRLF", bytes.ReplaceAll(tsv, []byte("\n"), []byte("\r\n")), "", "R-ZEEK-1: with CRLF line terminators"},
		{"conn.log, a 301-character line", long, "", "R-ZEEK-1: with very long lines"},
		{"conn.log, UTF-8", bytes.Replace(tsv, []byte("\tssl\t"), []byte("\tssl-é\t"), 1), "", "R-ZEEK-1: UTF-8 text"},
		{"conn.log, no line end", bytes.TrimRight(readDetect(t, "bro_conn.log")[:95], "\n"), "", "R-ZEEK-1: with no line terminators"},
		{"conn.log, escape", append([]byte("\x1b[1m"), tsv...), "", "R-ZEEK-1: with escape sequences"},
	} {
		got, err := Detect(c.data)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%s: Detect = %q, %v; want %q (%s)", c.name, got, err, c.want, c.rule)
			continue
		}
		if err != nil && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "--format zeek")) {
			t.Errorf("%s: error %q does not name --format zeek", c.name, err)
		}
	}
}

// TestDetectedZeekConverts: what detection calls Zeek converts as the reference converts it: the TSV
// and JSON conn.logs to their flows, a Bro-era space-separated log to an empty sample (R-ZEEK-2,
// R-OUT-9), under any extension.
func TestDetectedZeekConverts(t *testing.T) {
	for _, c := range []struct {
		name  string
		flows int
	}{
		{"conn.log", 2}, {"conn.json.log", 2}, {"bro_conn.log", 0}, {"bro_conn.txt", 0}, {"loaded_scripts.json", 0},
	} {
		res, f := convertFile(t, filepath.Join(detectDir, c.name), Options{})
		if res.Format != FormatZeek || len(f.Flows) != c.flows {
			t.Errorf("%s: format %s, %d flows; want zeek, %d", c.name, res.Format, len(f.Flows), c.flows)
		}
	}
	// Refused by auto-detection, read when the format is named (the documented extension).
	dir := t.TempDir()
	crlf := filepath.Join(dir, "crlf.conn.log")
	if err := os.WriteFile(crlf, bytes.ReplaceAll(readDetect(t, "conn.log"), []byte("\n"), []byte("\r\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := File(t.Context(), crlf, Options{OutDir: dir}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("CRLF conn.log, auto: %v, want ErrUnsupported", err)
	}
	if res, f := convertFile(t, crlf, Options{Format: FormatZeek}); len(f.Flows) != 2 {
		t.Errorf("CRLF conn.log, --format zeek: %d flows (%v), want 2", len(f.Flows), res.Warnings)
	}
}
