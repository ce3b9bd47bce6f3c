// Command decodeloop is the practical ceiling for `flowctl convert`: it reads every frame of a pcap file
// and decodes it with gopacket's DecodingLayerParser (Ethernet, IPv4, IPv6, TCP, UDP, ICMP), doing
// nothing else.
//
//	go run ./bench/decodeloop big.pcap
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: decodeloop FILE.pcap")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "decodeloop:", err)
		os.Exit(1)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, "decodeloop:", err)
		os.Exit(1)
	}
	var (
		eth   layers.Ethernet
		ip4   layers.IPv4
		ip6   layers.IPv6
		tcp   layers.TCP
		udp   layers.UDP
		icmp4 layers.ICMPv4
		icmp6 layers.ICMPv6
		pl    gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &icmp4, &icmp6, &pl)
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 8)
	began := time.Now()
	var n, transport uint64
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "decodeloop:", err)
			break
		}
		n++
		_ = parser.DecodeLayers(data, &decoded)
		for _, lt := range decoded {
			if lt == layers.LayerTypeTCP || lt == layers.LayerTypeUDP {
				transport++
			}
		}
	}
	el := time.Since(began)
	fmt.Printf("decodeloop: %d packets (%d TCP/UDP) in %s: %.0f packets/s\n", n, transport, el.Round(time.Millisecond), float64(n)/el.Seconds())
}
