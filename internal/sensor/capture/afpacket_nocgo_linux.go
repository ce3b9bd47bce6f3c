//go:build linux && !cgo

package capture

import "golang.org/x/net/bpf"

// compileUserFilter compiles the user's filter without libpcap (a static build), with the subset of
// pcap-filter(7) that rawfilter.go documents.
func compileUserFilter(snaplen int, filter string) ([]bpf.RawInstruction, error) {
	return compileRawIPFilter(snaplen, filter)
}
