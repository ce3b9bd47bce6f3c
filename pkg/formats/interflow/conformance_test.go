package interflow

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow/bftest"
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
	flow.Name(s.Flows, answers, flow.ActiveDestinations(s.Flows), nil)
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
	bftest.Compare(t, got, want)
}
