//go:build linux && cgo

package capture

import (
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// compileUserFilter compiles the user's filter with libpcap for packets that start at the IP header.
func compileUserFilter(snaplen int, filter string) ([]bpf.RawInstruction, error) {
	prog, err := pcap.CompileBPFFilter(layers.LinkType(dltRaw), snaplen, filter)
	if err != nil {
		return nil, err
	}
	raw := make([]bpf.RawInstruction, 0, len(prog))
	for _, in := range prog {
		raw = append(raw, bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K})
	}
	return raw, nil
}
