package interflow

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// R-IF-4/R-IF-5: with a 10-character timestamp the duration is the text of d, and each record "raises last
// with t + dec(duration)"; duration = fix6(last − first). "inf" is a number to the reference (float()),
// so the flow gets an infinite duration; no rule aborts the conversion.
func TestRIF5InfiniteDuration(t *testing.T) {
	rec := `{"srcip": "10.0.0.1", "srcport": 50000, "dstip": "93.184.216.34", "dstport": 443, "proto_name": "tcp", ` +
		`"timestamp": 1656517273, "duration": "inf", "_id": "x", "outbytes_total": 100, "inbytes_total": 200, ` +
		`"outpkts_delta": 1, "inpkts_delta": 2}`
	s, _, err := Read(strings.NewReader(rec+"\n"), "test.if")
	if err != nil {
		t.Fatalf("Read: %v (spec: no abort)", err)
	}
	flow.Finalize(&s, false)
	if f := one(t, s); !math.IsInf(f.Duration, 1) {
		t.Errorf("duration %v, want +Inf", f.Duration)
	}
}

// R-IF-4: "If s has 13 characters and no `.`, the value is milliseconds: t = x / 1000.0" and R-IF-3 lists
// every reason a record is skipped; a timestamp whose float() is infinite ("1e40000000000", 13 characters)
// is not one of them: the record is a flow, as in the reference.
func TestRIF4NonFiniteTimeKept(t *testing.T) {
	rec := func(port int, ts string) string {
		return `{"srcip": "10.0.0.1", "srcport": ` + strconv.Itoa(port) + `, "dstip": "93.184.216.34", "dstport": 443, ` +
			`"proto_name": "tcp", "timestamp": ` + ts + `, "_id": "x", "outbytes_total": 1, "inbytes_total": 2, ` +
			`"outpkts_delta": 1, "inpkts_delta": 1}`
	}
	s, _ := read(t, rec(50000, "1656517273742")+"\n"+rec(50001, `"1e40000000000"`)+"\n")
	if len(s.Flows) != 2 {
		t.Fatalf("%d flows, want 2", len(s.Flows))
	}
}
