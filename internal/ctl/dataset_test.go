package ctl

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/flowfleet/flowfleet/internal/dataset"
)

// csvColumn returns the values of one column of a dataset CSV.
func csvColumn(t *testing.T, data []byte, name string) []string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(dataset.Columns, ",") {
		t.Fatalf("CSV header %v, want %v", rows, dataset.Columns)
	}
	col := -1
	for i, c := range rows[0] {
		if c == name {
			col = i
		}
	}
	var out []string
	for _, r := range rows[1:] {
		out = append(out, r[col])
	}
	return out
}

// TestConvertToDataset: convert --to writes <name>.csv, .jsonl or .parquet with the .bf's flows in the
// dataset schema (and --stdout writes it to standard output).
func TestConvertToDataset(t *testing.T) {
	dir := t.TempDir()
	_, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "-o", dir, goldenCapture)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	bf := readBF(t, filepath.Join(dir, "dnscname_filtered.bf"))
	for _, to := range []string{"csv", "jsonl", "parquet"} {
		_, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--to", to, "-o", dir, goldenCapture)
		if err != nil {
			t.Fatalf("--to %s: %v\n%s", to, err, stderr)
		}
		data, err := os.ReadFile(filepath.Join(dir, "dnscname_filtered."+to))
		if err != nil {
			t.Fatalf("--to %s: %v", to, err)
		}
		var names []string
		switch to {
		case "csv":
			names = csvColumn(t, data, "dst_name")
			if ids := csvColumn(t, data, "sample_id"); len(ids) == 0 || ids[0] != "dnscname_filtered.bf" {
				t.Errorf("sample ids %v, want the .bf's name", ids)
			}
		case "jsonl":
			for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("jsonl line %q: %v", l, err)
				}
				names = append(names, m["dst_name"].(string))
			}
		case "parquet":
			f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if int(f.NumRows()) != len(bf.Flows) {
				t.Errorf("parquet: %d rows, want %d", f.NumRows(), len(bf.Flows))
			}
			continue
		}
		if len(names) != len(bf.Flows) {
			t.Fatalf("--to %s: %d records, want the .bf's %d flows", to, len(names), len(bf.Flows))
		}
		for i, fl := range bf.Flows {
			if !strings.HasPrefix(fl.Dst, names[i]) {
				t.Errorf("--to %s: record %d dst_name %q, the .bf's dst %q", to, i, names[i], fl.Dst)
			}
		}
	}
	out, _, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--to", "csv", "--stdout", goldenCapture)
	if err != nil || len(csvColumn(t, []byte(out), "dst_name")) != len(bf.Flows) {
		t.Errorf("--to csv --stdout: %v\n%s", err, out)
	}
	if _, _, err := runCtlIn(t, nil, "convert", "--to", "xml", "-o", dir, goldenCapture); err == nil || !strings.Contains(err.Error(), "--to") {
		t.Errorf("--to xml: %v, want an error naming --to", err)
	}
}

// TestShowToDataset: show --to writes the same records as convert --to, to -f or standard output.
func TestShowToDataset(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "-o", dir, goldenCapture); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if _, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "--to", "csv", "-o", dir, goldenCapture); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	bfPath := filepath.Join(dir, "dnscname_filtered.bf")
	out := filepath.Join(dir, "show.csv")
	if _, stderr, err := runCtlIn(t, nil, "show", "--to", "csv", "-f", out, bfPath); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	fromShow, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	fromConvert, err := os.ReadFile(filepath.Join(dir, "dnscname_filtered.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// A .bf keeps names, not addresses: dst_ip is what show cannot know; every other column agrees.
	for _, col := range []string{"sample_id", "start_time", "duration_seconds", "src_ip", "src_port", "dst_port", "dst_name",
		"name_source", "protocol", "src_packets", "src_bytes", "dst_packets", "dst_bytes"} {
		a, b := csvColumn(t, fromShow, col), csvColumn(t, fromConvert, col)
		if strings.Join(a, "|") != strings.Join(b, "|") {
			t.Errorf("column %s: show %q, convert %q", col, a, b)
		}
	}
	stdout, _, err := runCtlIn(t, nil, "show", "--to", "jsonl", bfPath)
	if err != nil || strings.Count(stdout, "\n") != len(readBF(t, bfPath).Flows) {
		t.Errorf("show --to jsonl: %v\n%s", err, stdout)
	}
	if _, _, err := runCtlIn(t, nil, "show", "-f", out, bfPath); err == nil {
		t.Error("show -f without --to: no error")
	}
}
