package relay

import (
	"encoding/json"
	"strings"
	"testing"
)

// The list cap holds, and is checked before a further element is decoded (the exported decoders use
// MaxListItems; a small cap keeps the test fast under -race).
func TestDecodeListCap(t *testing.T) {
	list := func(n int) json.RawMessage { return json.RawMessage("[" + strings.Repeat("{},", n-1) + "{}]") }
	if out, err := decodeList[Secflow](list(10), 10); err != nil || len(out) != 10 {
		t.Fatalf("10 of 10: %d %v", len(out), err)
	}
	if _, err := decodeList[Secflow](list(11), 10); err == nil || !strings.Contains(err.Error(), "more than 10") {
		t.Fatalf("11 of 10: %v", err)
	}
	// An element past the cap is not even looked at: a broken one there gives the cap error.
	if _, err := decodeList[Secflow](json.RawMessage(`[{}, {}, {"sourceData": [}]`), 2); err == nil || !strings.Contains(err.Error(), "more than 2") {
		t.Fatalf("broken third of 2: %v", err)
	}
}
