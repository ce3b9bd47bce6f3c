//go:build cgo

package capture

import (
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// The pure-Go filter compiler (the static sensor's) must agree with libpcap's on every expression and
// packet of the test set.
func TestRawFilterAgreesWithLibpcap(t *testing.T) {
	const snap = 65535
	for _, expr := range filterExprs {
		ours, err := compileRawIPFilter(snap, expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		prog, err := pcap.CompileBPFFilter(layers.LinkType(dltRaw), snap, expr)
		if err != nil {
			t.Fatalf("libpcap %q: %v", expr, err)
		}
		theirs := make([]bpf.RawInstruction, len(prog))
		for i, in := range prog {
			theirs[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
		}
		for name, pkt := range filterPackets {
			if a, b := runFilter(t, ours, pkt) != 0, runFilter(t, theirs, pkt) != 0; a != b {
				t.Errorf("%q on %s: ours accepts=%v, libpcap accepts=%v", expr, name, a, b)
			}
		}
	}
}
