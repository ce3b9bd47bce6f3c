package sensortest

import (
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Ethernet MAC addresses of synthetic frames.
var (
	MACA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	MACB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

// UDPFrame builds an Ethernet/IPv4/UDP frame.
func UDPFrame(src string, sport uint16, dst string, dport uint16, payload []byte) []byte {
	ip := ip4(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(&layers.Ethernet{SrcMAC: MACA, DstMAC: MACB, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(payload))
}

// TCPFrame builds an Ethernet/IPv4/TCP frame with the given flags ("S", "SA", "A", "PA", "FA", "R").
func TCPFrame(src string, sport uint16, dst string, dport uint16, flags string, payload []byte) []byte {
	ip := ip4(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Window: 65535}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'P':
			tcp.PSH = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		}
	}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(&layers.Ethernet{SrcMAC: MACA, DstMAC: MACB, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(payload))
}
