package netflow

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

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

func newYork(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("time zone data: %v", err)
	}
	return loc
}

// TestConformance converts the public NetFlow cases (R-HAR-1: America/New_York; R-HAR-2: case 34 expects
// one name from a warm long-term cache) and compares them with the reference's output flow by flow
// (R-HAR-3).
func TestConformance(t *testing.T) {
	for _, id := range []int{34, 35} {
		t.Run("testCase"+itoa(id), func(t *testing.T) {
			c := loadCase(t, id)
			if c.Format != "netflow" {
				t.Fatalf("case %d has format %q", id, c.Format)
			}
			in, err := os.Open(filepath.Join(corpus, c.Input))
			if err != nil {
				t.Skipf("input missing: %v", err)
			}
			defer in.Close()
			s, err := Read(in, c.Input, Options{Location: newYork(t)})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			flow.Finalize(&s, false)
			cache := flow.NewNameCache("")
			if id == 34 {
				cache.Set("2600:1403:9c00:30::17c1:6a8e", "r3.o.lencr.org")
			}
			flow.Name(s.Flows, nil, flow.ActiveDestinations(s.Flows), cache)
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
		})
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
