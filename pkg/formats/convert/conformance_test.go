package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// conformanceDir is the public corpus beside the checkout (never copied into the project).
var conformanceDir = filepath.Join("..", "..", "..", "..", "shared", "conformance")

type conformanceCase struct {
	ID       int     `json:"id"`
	Format   string  `json:"format"`
	Input    string  `json:"input"`
	DNS      *string `json:"dns"`
	Expected string  `json:"expected"`
}

func loadCases(t testing.TB) []conformanceCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(conformanceDir, "cases.json"))
	if err != nil {
		t.Skipf("conformance corpus not found at %s (%v): skipping", conformanceDir, err)
	}
	var doc struct {
		Cases []conformanceCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	sort.Slice(doc.Cases, func(i, j int) bool { return doc.Cases[i].ID < doc.Cases[j].ID })
	return doc.Cases
}

// TestConformance reproduces the reference's own run (R-HAR-1, R-HAR-2): America/New_York, one shared
// name cache, every case in id order twice; the second pass must equal every expected file exactly
// (R-HAR-3): fileName, trafficDate, flows as field→value maps with JSON types, and their order.
func TestConformance(t *testing.T) {
	cases := loadCases(t)
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("time zone: %v", err)
	}
	cachePath := filepath.Join(t.TempDir(), "longTermPassiveDNS.txt")
	outputs := map[int]string{}
	for pass := 1; pass <= 2; pass++ {
		for _, c := range cases {
			out := filepath.Join(t.TempDir(), fmt.Sprintf("pass%d", pass))
			opts := Options{OutDir: out, Location: loc}
			if c.DNS != nil {
				opts.DNSLog = filepath.Join(conformanceDir, *c.DNS)
			}
			cache, err := flow.LoadNameCache(cachePath)
			if err != nil {
				t.Fatalf("case %d: cache: %v", c.ID, err)
			}
			opts.Cache = cache
			res, err := File(context.Background(), filepath.Join(conformanceDir, c.Input), opts)
			if err != nil {
				t.Errorf("case %d (pass %d): %v", c.ID, pass, err)
				continue
			}
			if res.Flows > 0 {
				if err := cache.Save(); err != nil {
					t.Fatalf("save cache: %v", err)
				}
			}
			outputs[c.ID] = res.Output
		}
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("case%d", c.ID), func(t *testing.T) {
			got, ok := outputs[c.ID]
			if !ok {
				t.Fatalf("no output")
			}
			compareFiles(t, filepath.Join(conformanceDir, c.Expected), got)
		})
	}
}

// compareFiles compares as R-HAR-3 (docs/bayseflow.md) describes.
func compareFiles(t *testing.T, expectedPath, gotPath string) {
	t.Helper()
	if filepath.Base(expectedPath) != filepath.Base(gotPath) {
		t.Errorf("output file name %q, want %q", filepath.Base(gotPath), filepath.Base(expectedPath))
	}
	exp := readMaps(t, expectedPath)
	got := readMaps(t, gotPath)
	if exp["fileName"] != got["fileName"] {
		t.Errorf("fileName %v, want %v", got["fileName"], exp["fileName"])
	}
	if exp["trafficDate"] != got["trafficDate"] {
		t.Errorf("trafficDate %v, want %v", got["trafficDate"], exp["trafficDate"])
	}
	ef, _ := exp["BayseFlows"].([]any)
	gf, _ := got["BayseFlows"].([]any)
	if len(ef) != len(gf) {
		t.Errorf("%d flows, want %d", len(gf), len(ef))
	}
	diffs := 0
	for i := 0; i < len(ef) && i < len(gf); i++ {
		if !reflect.DeepEqual(ef[i], gf[i]) {
			diffs++
			if diffs <= 5 {
				e, _ := json.Marshal(ef[i])
				g, _ := json.Marshal(gf[i])
				t.Errorf("flow %d:\n got  %s\n want %s", i, g, e)
			}
		}
	}
	if diffs > 5 {
		t.Errorf("... %d flows differ in all", diffs)
	}
	raw, err := os.ReadFile(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bayseflow.Decode(raw); err != nil {
		t.Errorf("output does not decode: %v", err)
	}
}

func readMaps(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytesReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}
