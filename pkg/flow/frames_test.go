package flow

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// This file builds test frames by hand, byte for byte, so that every header field the rules read
// (R-CONV-1, R-DEC-*) can be set to odd values that a packet library would "fix".

// ipBytes returns the 4 or 16 bytes of an address literal.
func ipBytes(s string) []byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// eth returns an Ethernet II frame (R-PCAP-3) with the given EtherType.
func eth(etype uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x01})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x02})
	binary.BigEndian.PutUint16(f[12:14], etype)
	return append(f, payload...)
}

// ether4 and ether6 wrap an IP packet in Ethernet.
func ether4(pkt []byte) []byte { return eth(0x0800, pkt) }
func ether6(pkt []byte) []byte { return eth(0x86DD, pkt) }

// v4 describes an IPv4 header; zero values give a plain 20-byte header whose total length fits the
// payload.
type v4 struct {
	proto    byte
	src, dst string
	opts     []byte // options, a multiple of 4 bytes
	tl       int    // total length; -1 (or 0 with autoTL) means computed
	setTL    bool   // use tl as written (even 0)
	fragOff  uint16 // fragment offset field (flags and offset)
	ttl      byte
	ihlValue int // overrides IHL when > 0
}

func (h v4) build(payload []byte) []byte {
	hl := 20 + len(h.opts)
	p := make([]byte, hl, hl+len(payload))
	ihl := hl / 4
	if h.ihlValue > 0 {
		ihl = h.ihlValue
	}
	p[0] = 0x40 | byte(ihl)
	tl := hl + len(payload)
	if h.setTL {
		tl = h.tl
	}
	binary.BigEndian.PutUint16(p[2:4], uint16(tl))
	binary.BigEndian.PutUint16(p[4:6], 0x1234)
	binary.BigEndian.PutUint16(p[6:8], h.fragOff)
	p[8] = 64
	if h.ttl != 0 {
		p[8] = h.ttl
	}
	p[9] = h.proto
	copy(p[12:16], ipBytes(h.src))
	copy(p[16:20], ipBytes(h.dst))
	copy(p[20:], h.opts)
	return append(p, payload...)
}

// ipv4 returns a plain IPv4 packet.
func ipv4(proto byte, src, dst string, payload []byte) []byte {
	return v4{proto: proto, src: src, dst: dst}.build(payload)
}

// ipv6 returns an IPv6 packet whose fixed header's Next Header is next (R-DEC-3).
func ipv6(next byte, src, dst string, payload []byte) []byte {
	p := make([]byte, 40, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(payload)))
	p[6] = next
	p[7] = 64
	copy(p[8:24], ipBytes(src))
	copy(p[24:40], ipBytes(dst))
	return append(p, payload...)
}

// tcpSeg returns a TCP segment with a 20-byte header (data offset 5) unless hdrLen says otherwise.
func tcpSeg(sport, dport uint16, payload []byte) []byte {
	return tcpSegHL(sport, dport, 20, 0x18, payload)
}

func tcpSegHL(sport, dport uint16, hdrLen int, flags byte, payload []byte) []byte {
	s := make([]byte, hdrLen, hdrLen+len(payload))
	binary.BigEndian.PutUint16(s[0:2], sport)
	binary.BigEndian.PutUint16(s[2:4], dport)
	binary.BigEndian.PutUint32(s[4:8], 1000)
	binary.BigEndian.PutUint32(s[8:12], 2000)
	s[12] = byte(hdrLen/4) << 4
	s[13] = flags
	binary.BigEndian.PutUint16(s[14:16], 65535)
	for i := 20; i+1 < hdrLen; i += 2 {
		s[i] = 1 // NOP options
		s[i+1] = 1
	}
	return append(s, payload...)
}

// udpDgram returns a UDP datagram whose length field is 8+len(payload).
func udpDgram(sport, dport uint16, payload []byte) []byte {
	return udpLen(sport, dport, uint16(8+len(payload)), payload)
}

// udpLen returns a UDP datagram with the given length field (R-DEC-6 reads only that field).
func udpLen(sport, dport, length uint16, payload []byte) []byte {
	d := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(d[0:2], sport)
	binary.BigEndian.PutUint16(d[2:4], dport)
	binary.BigEndian.PutUint16(d[4:6], length)
	return append(d, payload...)
}

// icmpEcho returns an ICMP (or ICMPv6 with typ 128) echo message with an 8-byte header.
func icmpEcho(typ byte, data []byte) []byte {
	m := make([]byte, 8, 8+len(data))
	m[0] = typ
	binary.BigEndian.PutUint16(m[4:6], 0x77)
	binary.BigEndian.PutUint16(m[6:8], 1)
	return append(m, data...)
}

// gre returns a 4-byte GRE header (no options, R-DEC-8) with the given protocol type.
func gre(proto uint16, inner []byte) []byte {
	g := make([]byte, 4, 4+len(inner))
	binary.BigEndian.PutUint16(g[2:4], proto)
	return append(g, inner...)
}

// sll returns a Linux cooked capture v1 frame (link type 113): packet type, ARPHRD_ETHER, address
// length 6, address, protocol.
func sll(proto uint16, payload []byte) []byte {
	f := make([]byte, 16, 16+len(payload))
	binary.BigEndian.PutUint16(f[0:2], 0) // to us
	binary.BigEndian.PutUint16(f[2:4], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(f[4:6], 6)
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x09})
	binary.BigEndian.PutUint16(f[14:16], proto)
	return append(f, payload...)
}

// sll2 returns a Linux cooked capture v2 frame (link type 276).
func sll2(proto uint16, payload []byte) []byte {
	f := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(f[0:2], proto)
	binary.BigEndian.PutUint32(f[4:8], 2) // interface index
	binary.BigEndian.PutUint16(f[8:10], 1)
	f[10] = 0 // packet type
	f[11] = 6
	copy(f[12:18], []byte{0x02, 0, 0, 0, 0, 0x09})
	return append(f, payload...)
}

// vlan returns an 802.1Q-tagged Ethernet frame carrying an IP packet of the given EtherType.
func vlan(id uint16, etype uint16, payload []byte) []byte {
	tag := make([]byte, 4, 4+len(payload))
	binary.BigEndian.PutUint16(tag[0:2], id)
	binary.BigEndian.PutUint16(tag[2:4], etype)
	return eth(0x8100, append(tag, payload...))
}

// pad extends a frame with zero bytes to n bytes (Ethernet minimum-size padding).
func pad(f []byte, n int) []byte {
	for len(f) < n {
		f = append(f, 0)
	}
	return f
}

// in is one frame offered to an engine.
type in struct {
	link LinkType
	t    float64
	data []byte
}

// ethAt is an Ethernet frame at time t.
func ethAt(t float64, data []byte) in { return in{LinkEthernet, t, data} }

// run feeds frames into a fresh engine and flushes it without a cache.
func run(opts Options, frames ...in) Sample {
	e := NewEngine(opts)
	for _, f := range frames {
		e.Packet(f.link, f.t, f.data)
	}
	return e.Flush(nil)
}

// only returns the single flow of s, failing the test otherwise.
func only(t *testing.T, s Sample) Flow {
	t.Helper()
	if len(s.Flows) != 1 {
		t.Fatalf("got %d flows, want 1: %+v", len(s.Flows), s.Flows)
	}
	return s.Flows[0]
}

// none fails the test when s has flows.
func none(t *testing.T, s Sample) {
	t.Helper()
	if len(s.Flows) != 0 {
		t.Fatalf("got %d flows, want none: %+v", len(s.Flows), s.Flows)
	}
}

// endpoints describes a flow the way the .bf file shows its two ends.
type endpoints struct {
	src, sport, dst, dport string
}

func ends(f Flow) endpoints { return endpoints{f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort} }

// counts is a flow's four counters.
type counts struct{ sp, sb, dp, db int64 }

func countsOf(f Flow) counts { return counts{f.SrcPkts, f.SrcBytes, f.DstPkts, f.DstBytes} }
