package interflow

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// FuzzRead checks that Read never panics, that its errors name the file, and that what it accepts
// finishes (finalize, name, encode) into a BayseFlow file that decodes. Seeds are in
// testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	f.Add([]byte(base("") + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, answers, err := Read(bytes.NewReader(data), "fuzz.if")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.if") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, fl := range s.Flows {
			switch fl.Protocol {
			case flow.ProtoICMP:
				if fl.SrcPort != "" || fl.DstPort != "" {
					t.Fatalf("ICMP flow with ports: %+v", fl)
				}
			case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoOther:
			default:
				t.Fatalf("protocol %q", fl.Protocol)
			}
			if fl.Identifier != "" || fl.NameSource != "" || fl.DurationUnknown {
				t.Fatalf("flow %+v", fl)
			}
		}
		if answers != nil && answers.Len() == 0 {
			t.Fatalf("empty answer table returned")
		}
		flow.Finalize(&s, false)
		flow.Name(s.Flows, answers, func(string) bool { return true }, flow.NewNameCache(""))
		flow.FixZeroPackets(s.Flows)
		// Times far apart can overflow relativeStart to infinity, which the reference writes too
		// (as Infinity); only finite samples must give valid JSON.
		finite := !math.IsInf(s.Start, 0)
		for _, fl := range s.Flows {
			finite = finite && !math.IsInf(fl.RelativeStart, 0) && !math.IsInf(fl.Duration, 0)
		}
		out := bayseflow.Encode(s, "fuzz.bf", "0")
		if _, err := bayseflow.Decode(out); err != nil && finite {
			t.Fatalf("output is not a valid BayseFlow file: %v\n%s", err, out)
		}
	})
}
