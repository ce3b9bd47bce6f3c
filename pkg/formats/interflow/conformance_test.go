package interflow

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// corpus is the public conformance corpus, read in place (never copied into the repository).
var corpus = filepath.Join("..", "..", "..", "..", "shared", "conformance")

type corpusCase struct {
	ID       int     `json:"id"`
	Format   string  `json:"format"`
	Input    string  `json:"input"`
	DNS      *string `json:"dns"`
	Expected string  `json:"expected"`
}

func loadCase(t *testing.T, id int) corpusCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpus, "cases.json"))
	if err != nil {
		t.Skipf("conformance corpus not available at %s: %v", corpus, err)
	}
	var all struct {
		Cases []corpusCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	for _, c := range all.Cases {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("case %d not in cases.json", id)
	return corpusCase{}
}

// TestConformance converts the public Interflow case 22 and compares it with the reference's output flow
// by flow (R-HAR-3).
func TestConformance(t *testing.T) {
	c := loadCase(t, 22)
	if c.Format != "interflow" {
		t.Fatalf("case 22 has format %q", c.Format)
	}
	in, err := os.Open(filepath.Join(corpus, c.Input))
	if err != nil {
		t.Skipf("input missing: %v", err)
	}
	defer in.Close()
	s, answers, err := Read(in, c.Input)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if answers == nil || answers.Len() != 1 {
		t.Errorf("answer table %+v, want presence.services.sfb.trafficmanager.net. only", answers)
	}
	flow.Finalize(&s, false)
	flow.Name(s.Flows, answers, activeDestinations(s.Flows), nil)
	flow.FixZeroPackets(s.Flows)
	got, err := bayseflow.Decode(bayseflow.Encode(s, bayseflow.LogFileName(c.Input), ""))
	if err != nil {
		t.Fatalf("decode own output: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(corpus, c.Expected))
	if err != nil {
		t.Fatalf("expected file: %v", err)
	}
	want, err := bayseflow.Decode(data)
	if err != nil {
		t.Fatalf("decode expected: %v", err)
	}
	compareFiles(t, got, want)
}

// activeDestinations is ACTIVE for flow logs (R-NAME-1, R-IF-7): the non-local flow destinations.
func activeDestinations(flows []flow.Flow) func(string) bool {
	set := make(map[string]bool)
	for _, f := range flows {
		if a, ok := flow.ParseAddr(f.DstAddr); ok && !flow.IsLocal(a) {
			set[f.DstAddr] = true
		}
	}
	return func(s string) bool { return set[s] }
}

func compareFiles(t *testing.T, got, want *bayseflow.File) {
	t.Helper()
	if got.FileName != want.FileName {
		t.Errorf("fileName = %q, want %q", got.FileName, want.FileName)
	}
	if got.TrafficDate != want.TrafficDate {
		t.Errorf("trafficDate = %q, want %q", got.TrafficDate, want.TrafficDate)
	}
	if len(got.Flows) != len(want.Flows) {
		t.Fatalf("%d flows, want %d:\n got %+v\nwant %+v", len(got.Flows), len(want.Flows), got.Flows, want.Flows)
	}
	for i := range want.Flows {
		if !reflect.DeepEqual(got.Flows[i], want.Flows[i]) {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, got.Flows[i], want.Flows[i])
		}
	}
}
