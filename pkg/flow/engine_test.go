package flow

import (
	"encoding/binary"
	"testing"
)

// Tests of section 3.3 (R-PKT-*, R-ID-1), R-ORD-2, R-PCAP-4 and the link-layer handling of R-PCAP-3.

// R-PKT-1, R-PKT-3: frames of both directions fall into one flow; a frame counts for the source when
// its key equals the flow's key. R-FLOW-3: duration = last − first. testCase29-like numbers.
func TestRPKT1And3Counting(t *testing.T) {
	c2s := func(n int) []byte {
		return ether4(ipv4(6, "10.0.1.5", "10.0.0.4", tcpSeg(49709, 88, make([]byte, n))))
	}
	s2c := func(n int) []byte {
		return ether4(ipv4(6, "10.0.0.4", "10.0.1.5", tcpSeg(88, 49709, make([]byte, n))))
	}
	base := 1649000837.337797
	frames := []in{
		ethAt(base, c2s(0)), ethAt(base+0.0001, s2c(0)), ethAt(base+0.0002, c2s(0)),
		ethAt(base+0.0003, c2s(1418)), ethAt(base+0.0004, c2s(163)), ethAt(base+0.0005, s2c(1553)),
		ethAt(base+0.0006, s2c(0)), ethAt(base+0.0007, c2s(0)), ethAt(base+0.0008, s2c(0)),
		ethAt(base+0.0009, s2c(0)), ethAt(1649000837.339649, c2s(0)),
	}
	f := only(t, run(Options{}, frames...))
	if ends(f) != (endpoints{"10.0.1.5", "49709", "10.0.0.4", "88"}) {
		t.Errorf("ends %+v", ends(f))
	}
	if countsOf(f) != (counts{6, 1581, 5, 1553}) {
		t.Errorf("counts %+v, want 6/1581 5/1553", countsOf(f))
	}
	if f.Duration != 0.001852 || f.RelativeStart != 0 || f.Identifier != "0" {
		t.Errorf("duration %v relativeStart %v id %q", f.Duration, f.RelativeStart, f.Identifier)
	}
}

// R-PKT-2 (quirk): UDP and TCP on one 4-tuple share a flow; the UDP one is created first (pass 1) and
// keeps its label: 1 UDP frame with 20 bytes + 1 TCP frame with 30 → UDP, srcPkts 2, srcBytes 50.
func TestRPKT2UDPThenTCP(t *testing.T) {
	u := ether4(ipv4(17, "192.168.1.2", "93.184.216.34", udpDgram(50000, 443, make([]byte, 20))))
	c := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, make([]byte, 30))))
	f := only(t, run(Options{}, ethAt(1, u), ethAt(2, c)))
	if f.Protocol != ProtoUDP || countsOf(f) != (counts{2, 50, 0, 0}) || f.Identifier != "0" {
		t.Errorf("got %+v", f)
	}
}

// R-PKT-2, R-PCAP-5: a TCP frame earlier in the file than a UDP frame on the same 4-tuple still gives one
// flow labelled UDP and created by the UDP frame (its direction, its time), because the reference's
// UDP pass runs first. The engine reproduces the three passes in one streaming pass.
func TestRPKT2TCPBeforeUDP(t *testing.T) {
	// Neither end is local and both ports are above 1023: R-DIR-N2 makes each frame's sender the source,
	// so the two frames would choose opposite directions.
	c := ether4(ipv4(6, "8.8.8.8", "9.9.9.9", tcpSeg(2000, 3000, make([]byte, 30))))
	u := ether4(ipv4(17, "9.9.9.9", "8.8.8.8", udpDgram(3000, 2000, make([]byte, 20))))
	s := run(Options{}, ethAt(1, c), ethAt(2, u))
	f := only(t, s)
	if f.Protocol != ProtoUDP {
		t.Errorf("label %q, want UDP", f.Protocol)
	}
	if ends(f) != (endpoints{"9.9.9.9", "3000", "8.8.8.8", "2000"}) {
		t.Errorf("ends %+v: the UDP frame decides the direction", ends(f))
	}
	if countsOf(f) != (counts{1, 20, 1, 30}) {
		t.Errorf("counts %+v", countsOf(f))
	}
	// S is the TCP frame's time (R-PCAP-4); the flow starts at the UDP frame: relativeStart 1.0; last is
	// the latest frame (the UDP one), so the duration is 0.
	if s.Start != 1 || f.RelativeStart != 1 || f.Duration != 0 || f.Identifier != "0" {
		t.Errorf("S %v relativeStart %v duration %v id %q", s.Start, f.RelativeStart, f.Duration, f.Identifier)
	}
}

// R-PKT-2 and R-ORD-2 together: the relabelled flow takes its place among the UDP flows.
func TestRPKT2CreationOrder(t *testing.T) {
	c := ether4(ipv4(6, "8.8.8.8", "9.9.9.9", tcpSeg(2000, 3000, nil)))
	u1 := ether4(ipv4(17, "1.1.1.1", "2.2.2.2", udpDgram(4000, 5000, nil)))
	u2 := ether4(ipv4(17, "9.9.9.9", "8.8.8.8", udpDgram(3000, 2000, nil)))
	tcpOther := ether4(ipv4(6, "3.3.3.3", "4.4.4.4", tcpSeg(6000, 7000, nil)))
	s := run(Options{}, ethAt(5, c), ethAt(5, tcpOther), ethAt(5, u1), ethAt(5, u2))
	var got []string
	for _, f := range s.Flows {
		got = append(got, f.SrcAddr+"/"+string(f.Protocol)+"/"+f.Identifier)
	}
	want := []string{"1.1.1.1/UDP/0", "9.9.9.9/UDP/1", "3.3.3.3/TCP/0"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
			break
		}
	}
}

// R-PKT-5: one flow per 4-tuple per file: no split on time gaps, FIN/RST or SYN reuse. All ICMP between
// two addresses is one flow.
func TestRPKT5OneFlowPer4Tuple(t *testing.T) {
	syn := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSegHL(50000, 443, 20, 0x02, nil)))
	fin := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSegHL(50000, 443, 20, 0x11, nil)))
	rst := ether4(ipv4(6, "93.184.216.34", "192.168.1.2", tcpSegHL(443, 50000, 20, 0x04, nil)))
	f := only(t, run(Options{}, ethAt(1, syn), ethAt(2, fin), ethAt(3, rst), ethAt(5000, syn), ethAt(9000, fin)))
	if countsOf(f) != (counts{4, 0, 1, 0}) || f.Duration != 8999 {
		t.Errorf("got %+v duration %v", countsOf(f), f.Duration)
	}
	echo := ether4(ipv4(1, "10.0.0.60", "157.230.93.100", icmpEcho(8, nil)))
	reply := ether4(ipv4(1, "157.230.93.100", "10.0.0.60", icmpEcho(0, nil)))
	unreach := ether4(ipv4(1, "157.230.93.100", "10.0.0.60", icmpEcho(3, make([]byte, 28))))
	f = only(t, run(Options{}, ethAt(1, echo), ethAt(2, reply), ethAt(3, unreach), ethAt(3517.813041+1, echo)))
	if f.SrcAddr != "10.0.0.60" || countsOf(f) != (counts{2, 0, 2, 28}) || f.Duration != 3517.813041 {
		t.Errorf("ICMP: %+v duration %v", countsOf(f), f.Duration)
	}
}

// R-PKT-1: K == K' (same address and port on both ends) counts every frame for the source.
func TestRPKT1SelfFlow(t *testing.T) {
	fr := ether4(ipv4(17, "192.168.1.2", "192.168.1.2", udpDgram(5000, 5000, make([]byte, 4))))
	f := only(t, run(Options{}, ethAt(1, fr), ethAt(2, fr)))
	if countsOf(f) != (counts{2, 8, 0, 0}) {
		t.Errorf("got %+v", countsOf(f))
	}
}

// R-ORD-2: three frames with one timestamp, ICMP first in the file, come out UDP, TCP, ICMP; inside a
// pass, file order.
func TestRORD2PassOrder(t *testing.T) {
	icmp := ether4(ipv4(1, "192.168.1.2", "8.8.8.8", icmpEcho(8, nil)))
	tcp := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, nil)))
	udp := ether4(ipv4(17, "192.168.1.2", "8.8.4.4", udpDgram(50001, 53, nil)))
	icmp2 := ether4(ipv4(1, "192.168.1.3", "8.8.8.8", icmpEcho(8, nil)))
	s := run(Options{}, ethAt(7, icmp), ethAt(7, tcp), ethAt(7, udp), ethAt(7, icmp2))
	var got []string
	for _, f := range s.Flows {
		got = append(got, string(f.Protocol)+" "+f.SrcAddr)
	}
	want := []string{"UDP 192.168.1.2", "TCP 192.168.1.2", "ICMP 192.168.1.2", "ICMP 192.168.1.3"}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("order %v, want %v", got, want)
	}
}

// R-ORD-2: tunnelled TCP/UDP belongs to pass 3 (outer protocol GRE) and so comes after plain TCP.
func TestRORD2TunnelledIsPass3(t *testing.T) {
	inner := ipv4(17, "8.8.4.4", "9.9.9.9", udpDgram(3000, 4000, nil))
	tunnelled := ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x0800, inner)))
	tcp := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, nil)))
	s := run(Options{}, ethAt(1, tunnelled), ethAt(1, tcp))
	if len(s.Flows) != 2 || s.Flows[0].Protocol != ProtoTCP || s.Flows[1].Protocol != ProtoUDP {
		t.Errorf("got %+v", s.Flows)
	}
}

// R-ID-1: after the stable sort by relativeStart, TCP and UDP flows are numbered by two independent
// counters; ICMP and "" flows get "".
func TestRID1Identifiers(t *testing.T) {
	tcp := func(sp uint16) []byte {
		return ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(sp, 443, nil)))
	}
	udp := func(sp uint16) []byte {
		return ether4(ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(sp, 53, nil)))
	}
	icmp := ether4(ipv4(1, "192.168.1.2", "8.8.8.8", icmpEcho(8, nil)))
	s := run(Options{}, ethAt(13, tcp(50003)), ethAt(11, udp(50001)), ethAt(12, tcp(50002)), ethAt(10, icmp), ethAt(14, udp(50004)))
	want := []struct {
		proto Protocol
		id    string
		rel   float64
	}{{ProtoICMP, "", 0}, {ProtoUDP, "0", 1}, {ProtoTCP, "0", 2}, {ProtoTCP, "1", 3}, {ProtoUDP, "1", 4}}
	if len(s.Flows) != len(want) {
		t.Fatalf("flows %+v", s.Flows)
	}
	for i, w := range want {
		f := s.Flows[i]
		if f.Protocol != w.proto || f.Identifier != w.id || f.RelativeStart != w.rel {
			t.Errorf("flow %d: %s %q %v, want %s %q %v", i, f.Protocol, f.Identifier, f.RelativeStart, w.proto, w.id, w.rel)
		}
	}
}

// R-PCAP-4: S is the earliest IP frame, wherever it is in the file and whether or not it makes a flow;
// non-IP frames do not count. R-ERR-2: ARP only → NoStart and no flows.
func TestRPCAP4Start(t *testing.T) {
	arp := pad(eth(0x0806, make([]byte, 28)), 60)
	short := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", nil))
	udp := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(50000, 53, nil)))
	s := run(Options{}, ethAt(1, arp), ethAt(50, udp), ethAt(20, short), ethAt(30, udp))
	f := only(t, s)
	// first = 50 (the flow's first frame in file order), last = max(50, 30) = 50.
	if s.Start != 20 || f.RelativeStart != 30 || f.Duration != 0 {
		t.Errorf("S %v relativeStart %v duration %v", s.Start, f.RelativeStart, f.Duration)
	}
	s = run(Options{}, ethAt(1, arp))
	none(t, s)
	if s.Start != NoStart {
		t.Errorf("ARP only: S = %v, want %v", s.Start, NoStart)
	}
}

// R-FLOW-3: last starts at 0 and only rises, so a flow whose later frames are older than its first
// frame has duration 0; relativeStart is fix6(first − S).
func TestRFLOW3DurationOutOfOrder(t *testing.T) {
	udp := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(50000, 53, nil)))
	f := only(t, run(Options{}, ethAt(1617652286.320474, udp), ethAt(1617652286.246050, udp)))
	if f.Duration != 0 || f.RelativeStart != 0.074424 {
		t.Errorf("duration %v relativeStart %v", f.Duration, f.RelativeStart)
	}
	f = only(t, run(Options{}, ethAt(1617652286.246050, udp), ethAt(1617652286.320474, udp)))
	if f.Duration != 0.074424 {
		t.Errorf("testCase5 duration %v, want 0.074424", f.Duration)
	}
}

// R-PCAP-3: raw IP (101, 228, 229), BSD NULL/LOOP and Linux cooked v2 are decoded properly, every other
// rule unchanged: the same packet gives the same flow on every link type.
func TestLinkTypes(t *testing.T) {
	p4 := ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(50000, 53, make([]byte, 10)))
	p6 := ipv6(17, "2001:db8::1", "2607:f8b0::2", udpDgram(50000, 53, make([]byte, 10)))
	le := func(af uint32, p []byte) []byte {
		b := make([]byte, 4, 4+len(p))
		binary.LittleEndian.PutUint32(b, af)
		return append(b, p...)
	}
	be := func(af uint32, p []byte) []byte {
		b := make([]byte, 4, 4+len(p))
		binary.BigEndian.PutUint32(b, af)
		return append(b, p...)
	}
	cases := []struct {
		name string
		link LinkType
		data []byte
		v6   bool
	}{
		{"ethernet", LinkEthernet, ether4(p4), false},
		{"raw 101 v4", LinkRaw, p4, false},
		{"raw 101 v6", LinkRaw, p6, true},
		{"ipv4 228", LinkIPv4, p4, false},
		{"ipv6 229", LinkIPv6, p6, true},
		{"null v4", LinkNull, le(2, p4), false},
		{"null v6 (24)", LinkNull, le(24, p6), true},
		{"null v6 (28)", LinkNull, le(28, p6), true},
		{"null v6 (30)", LinkNull, le(30, p6), true},
		{"null big-endian writer", LinkNull, be(2, p4), false},
		{"loop v4", LinkLoop, be(2, p4), false},
		{"loop v6", LinkLoop, be(24, p6), true},
		{"sll v1", LinkLinuxSLL, sll(0x0800, p4), false},
		{"sll v2 v4", LinkLinuxSLL2, sll2(0x0800, p4), false},
		{"sll v2 v6", LinkLinuxSLL2, sll2(0x86DD, p6), true},
	}
	for _, c := range cases {
		s := run(Options{}, in{c.link, t0, c.data})
		if len(s.Flows) != 1 {
			t.Errorf("%s: %d flows", c.name, len(s.Flows))
			continue
		}
		f := s.Flows[0]
		wantSrc := "192.168.1.2"
		if c.v6 {
			wantSrc = "2001:db8::1"
		}
		if f.SrcAddr != wantSrc || f.SrcPort != "50000" || f.DstPort != "53" || f.SrcBytes != 10 || f.Protocol != ProtoUDP {
			t.Errorf("%s: %+v", c.name, f)
		}
	}
	// Not IP: raw IP with a bad version, NULL with another family, SLL2 carrying ARP.
	for _, c := range []in{{LinkRaw, t0, append([]byte{0x50}, p4[1:]...)}, {LinkNull, t0, le(7, p4)}, {LinkLinuxSLL2, t0, sll2(0x0806, make([]byte, 28))}} {
		s := run(Options{}, c)
		none(t, s)
		if s.Start != NoStart {
			t.Errorf("link %v: a non-IP frame set S", c.link)
		}
	}
}

// R-PCAP-3: unknown link types are refused with an error naming the type.
func TestCheckLinkType(t *testing.T) {
	for _, l := range []LinkType{LinkNull, LinkEthernet, LinkRaw, LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2} {
		if err := CheckLinkType(l); err != nil {
			t.Errorf("%v refused: %v", l, err)
		}
	}
	err := CheckLinkType(LinkType(147))
	if err == nil || !contains(err.Error(), "LINKTYPE 147") {
		t.Errorf("link type 147: %v", err)
	}
}

// R-PCAP-3: a VLAN-tagged frame is not an IP frame by default (no flow, no S); with DecodeVLAN it is
// decoded like its untagged form. QinQ too.
func TestDecodeVLAN(t *testing.T) {
	p := ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, make([]byte, 10)))
	tagged := vlan(100, 0x0800, p)
	qinq := eth(0x88A8, append([]byte{0, 200, 0x81, 0x00, 0, 100, 0x08, 0x00}, p...))
	for _, fr := range [][]byte{tagged, qinq} {
		s := run(Options{}, ethAt(t0, fr))
		none(t, s)
		if s.Start != NoStart {
			t.Errorf("default: S = %v, want NoStart", s.Start)
		}
		f := only(t, run(Options{DecodeVLAN: true}, ethAt(t0, fr)))
		if ends(f) != (endpoints{"192.168.1.2", "50000", "93.184.216.34", "443"}) || f.SrcBytes != 10 {
			t.Errorf("DecodeVLAN: %+v", f)
		}
	}
	// A tagged non-IP frame stays dropped.
	none(t, run(Options{DecodeVLAN: true}, ethAt(t0, vlan(5, 0x0806, make([]byte, 46)))))
}

// R-OUT-8: a side with bytes but no packets gets one packet; negative byte counts are left alone.
func TestROUT8FixZeroPackets(t *testing.T) {
	flows := []Flow{
		{SrcBytes: 40, SrcPkts: 0, DstBytes: 1000, DstPkts: 0},
		{SrcBytes: -8, SrcPkts: 0, DstBytes: 0, DstPkts: 0},
		{SrcBytes: 5, SrcPkts: 3, DstBytes: 0, DstPkts: 2},
	}
	FixZeroPackets(flows)
	want := []counts{{1, 40, 1, 1000}, {0, -8, 0, 0}, {3, 5, 2, 0}}
	for i := range flows {
		if countsOf(flows[i]) != want[i] {
			t.Errorf("flow %d: %+v, want %+v", i, countsOf(flows[i]), want[i])
		}
	}
}

// Finalize: R-FLOW-2 relativeStart = fix6(first − S); R-ORD-1 stable sort; no identifiers for logs.
func TestFinalize(t *testing.T) {
	s := Sample{Start: 1656517273.742, Flows: []Flow{
		{SrcAddr: "b", First: 1656537951.826, Last: 1656537951.869, Identifier: "keep"},
		{SrcAddr: "a", First: 1656517273.742, Last: 1656517273.87, Identifier: "keep"},
		{SrcAddr: "c", First: 1656517273.742, Last: 1656517273.742, Identifier: "keep", DurationUnknown: true, Duration: -1},
	}}
	Finalize(&s, false)
	if s.Flows[0].SrcAddr != "a" || s.Flows[1].SrcAddr != "c" || s.Flows[2].SrcAddr != "b" {
		t.Fatalf("order %v %v %v", s.Flows[0].SrcAddr, s.Flows[1].SrcAddr, s.Flows[2].SrcAddr)
	}
	if s.Flows[2].RelativeStart != 20678.084 || s.Flows[2].Duration != 0.043 || s.Flows[0].Duration != 0.128 {
		t.Errorf("numbers %+v", s.Flows)
	}
	if s.Flows[1].Duration != -1 || s.Flows[0].Identifier != "keep" {
		t.Errorf("unknown duration or identifier changed: %+v", s.Flows[1])
	}
}

// An engine is reusable after Flush (a window boundary).
func TestEngineFlushResets(t *testing.T) {
	e := NewEngine(Options{})
	udp := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(50000, 53, nil)))
	e.Packet(LinkEthernet, 10, udp)
	s1 := e.Flush(nil)
	if len(s1.Flows) != 1 || s1.Start != 10 {
		t.Fatalf("first window %+v", s1)
	}
	e.Packet(LinkEthernet, 20, udp)
	s2 := e.Flush(nil)
	if len(s2.Flows) != 1 || s2.Start != 20 || s2.Flows[0].RelativeStart != 0 || s2.Flows[0].Identifier != "0" {
		t.Errorf("second window %+v", s2)
	}
	if s3 := e.Flush(nil); len(s3.Flows) != 0 || s3.Start != NoStart {
		t.Errorf("empty window %+v", s3)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
