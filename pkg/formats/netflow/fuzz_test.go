package netflow

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// FuzzRead checks that Read never panics, that its errors name the file, and that what it accepts
// finishes into a valid BayseFlow file. Seeds are in testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	f.Add([]byte(hdr + "2022-06-02 17:21:39,x,0.000,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"))
	ny := newYork(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Read(bytes.NewReader(data), "fuzz.netflow", Options{Location: ny})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.netflow") {
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
			if fl.Identifier != "" {
				t.Fatalf("identifier %q", fl.Identifier)
			}
		}
		flow.Finalize(&s, false)
		flow.FixZeroPackets(s.Flows)
		out := bayseflow.Encode(s, "fuzz.bf", "0")
		if _, err := bayseflow.Decode(out); err != nil {
			t.Fatalf("output is not a valid BayseFlow file: %v\n%s", err, out)
		}
	})
}
