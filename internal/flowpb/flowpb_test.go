package flowpb

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

// EncodeEnds gives Encode's bytes, and every prefix it marks decodes to that many flows.
func TestEncodeEnds(t *testing.T) {
	var flows []*flowfleetv1.Flow
	for i := range 5 {
		flows = append(flows, &flowfleetv1.Flow{SrcAddr: "10.0.0.1", DstAddr: "10.0.0.2", DstName: strings.Repeat("n", 100*i),
			SrcPort: strconv.Itoa(1000 + i), FirstSeen: float64(i)})
	}
	want, err := Encode(flows)
	if err != nil {
		t.Fatal(err)
	}
	got, ends, err := EncodeEnds(flows)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeEnds bytes differ from Encode's")
	}
	for i, end := range ends {
		dec, err := Decode(got[:end])
		if err != nil || len(dec) != i+1 || dec[i].GetSrcPort() != strconv.Itoa(1000+i) {
			t.Fatalf("prefix %d: %d flows, %v", i, len(dec), err)
		}
	}
}
