package ctl

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

var goldenBF = filepath.Join("..", "..", "pkg", "formats", "convert", "testdata", "golden", "dnscname_filtered.bf")

// show prints a local .bf with the columns and JSON of `samples flows`: times are trafficDate plus
// relativeStart, the destination address is known only for names of source "original".
func TestShowBayseFlowFile(t *testing.T) {
	stdout, _, err := runCtlIn(t, nil, "show", "-o", "json", goldenBF)
	if err != nil {
		t.Fatal(err)
	}
	var flows []map[string]any
	if err := json.Unmarshal([]byte(stdout), &flows); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(flows) != 4 {
		t.Fatalf("%d flows, want 4:\n%s", len(flows), stdout)
	}
	f := flows[2]
	if f["srcAddr"] != "10.0.2.15" || f["srcPort"] != 52681.0 || f["dstName"] != "www.example.com" || f["dstAddr"] != "" ||
		f["dstPort"] != 443.0 || f["nameSource"] != "passive" || f["protocol"] != "tcp" || f["srcBytes"] != 100.0 ||
		f["dstBytes"] != 1000.0 || f["firstSeen"] != 1647347035.3 || f["start"] != "2022-03-15T12:23:55.3Z" || !near(f["duration"], 0.1) {
		t.Errorf("flow 3: %v", f)
	}
	if flows[3]["dstAddr"] != "151.101.1.1" || flows[3]["nameSource"] != "original" {
		t.Errorf("flow 4: %v", flows[3])
	}
	table, _, err := runCtlIn(t, nil, "show", "--utc", goldenBF)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "SRC ") ||
		!strings.Contains(lines[3], "www.example.com:443") || !strings.Contains(lines[3], "2022-03-15 12:23:55.300000 UTC") {
		t.Errorf("table:\n%s", table)
	}
}

func TestShowRefusesDamagedFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "x.bf"), []byte(`{"hash": "0", "trafficDate": "1.0", "fileName": "x.bf", "BayseFlows": [{"src": "a:1", "srcPkts": "many"`))
	if _, _, err := runCtlIn(t, nil, "show", p); err == nil || !strings.Contains(err.Error(), "x.bf") {
		t.Errorf("damaged file: %v", err)
	}
	if _, _, err := runCtlIn(t, nil, "show", dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
}

// near reports whether v is a number within a microsecond of want (durations are differences of epoch
// seconds, as in samples flows).
func near(v any, want float64) bool {
	x, ok := v.(float64)
	return ok && x > want-1e-6 && x < want+1e-6
}
