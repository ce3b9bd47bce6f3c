package flow

import (
	"bytes"
	"testing"
)

// Tests of section 3.2 (R-DEC-0 … R-DEC-11), through the engine so that what is checked is what ends
// up in a flow.

const t0 = 1617652286.24605

// R-DEC-0: frames of 34 bytes or fewer are ignored; a 35-byte frame is decoded (with R-CONV-1 clipping).
func TestRDEC0ShortFramesIgnored(t *testing.T) {
	hdrOnly := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", nil)) // 14 + 20 = 34 bytes
	if len(hdrOnly) != 34 {
		t.Fatalf("frame is %d bytes", len(hdrOnly))
	}
	s := run(Options{}, ethAt(t0, hdrOnly))
	none(t, s)
	if s.Start != t0 {
		t.Errorf("S = %v, want the ignored frame's time %v (R-PCAP-4)", s.Start, t0)
	}

	// 35 bytes: one byte of UDP header. portA = the one byte present, portB = 0, UDP length 0 → −8.
	f35 := append(append([]byte{}, hdrOnly...), 0x01)
	f := only(t, run(Options{}, ethAt(t0, f35)))
	if f.Protocol != ProtoUDP || f.SrcBytes != -8 {
		t.Errorf("35-byte frame: %+v", f)
	}
}

// R-DEC-2: IPv4 options are skipped through H; the transport header is read after them.
func TestRDEC2IPv4Options(t *testing.T) {
	opts := []byte{0x94, 0x04, 0x00, 0x00} // Router Alert
	pkt := v4{proto: 6, src: "192.168.1.2", dst: "93.184.216.34", opts: opts}.build(tcpSeg(50000, 443, make([]byte, 10)))
	f := only(t, run(Options{}, ethAt(t0, ether4(pkt))))
	want := endpoints{"192.168.1.2", "50000", "93.184.216.34", "443"}
	if ends(f) != want || f.SrcBytes != 10 || f.Protocol != ProtoTCP {
		t.Errorf("got %+v bytes %d, want %+v with 10 bytes (TL 54 − H 24 − HL 20)", ends(f), f.SrcBytes, want)
	}
}

// R-DEC-2 (quirk): fragments are decoded as if they began with a transport header.
func TestRDEC2FragmentsDecodedAsTransport(t *testing.T) {
	frag := v4{proto: 17, src: "192.168.1.2", dst: "8.8.8.8", fragOff: 185}.build(udpDgram(50000, 2222, make([]byte, 12)))
	f := only(t, run(Options{}, ethAt(t0, ether4(frag))))
	if f.SrcPort != "50000" || f.DstPort != "2222" || f.SrcBytes != 12 {
		t.Errorf("fragment: %+v", f)
	}
}

// R-DEC-3: IPv6 fixed header only; TL = payload length + 40.
func TestRDEC3IPv6Fixed(t *testing.T) {
	pkt := ipv6(6, "2001:4860::1", "2607:f8b0::2", tcpSeg(443, 50123, make([]byte, 5)))
	f := only(t, run(Options{}, ethAt(t0, ether6(pkt))))
	// 2001:4860::1 is not local and 443 < 50123: R-DIR-N3 makes the higher port's end the source.
	want := endpoints{"2607:f8b0::2", "50123", "2001:4860::1", "443"}
	if ends(f) != want || f.DstBytes != 5 || f.DstPkts != 1 {
		t.Errorf("got %+v %+v, want %+v with dstBytes 5", ends(f), countsOf(f), want)
	}
}

// R-DEC-3: a hop-by-hop extension header is not followed: the frame is dropped, but it still counts for S
// (R-PCAP-4).
func TestRDEC3HopByHopDropped(t *testing.T) {
	hbh := append([]byte{17, 0, 5, 2, 0, 0, 1, 0}, udpDgram(5353, 53, make([]byte, 20))...)
	frame := ether6(ipv6(0, "2001:4860::1", "2607:f8b0::2", hbh))
	ok := ether6(ipv6(17, "2001:4860::1", "2607:f8b0::2", udpDgram(5353, 53, make([]byte, 20))))
	s := run(Options{}, ethAt(10, frame), ethAt(20, ok))
	f := only(t, s)
	if s.Start != 10 || f.RelativeStart != 10 || f.SrcPkts+f.DstPkts != 1 {
		t.Errorf("S %v, flow %+v", s.Start, f)
	}
}

// R-DEC-4, R-DEC-5: TCP payload = TL − H − HL; testCase4 numbers (TL 347, HL 32 → 295).
func TestRDEC5TCPPayloadFromTotalLength(t *testing.T) {
	seg := tcpSegHL(63690, 80, 32, 0x18, make([]byte, 295))
	f := only(t, run(Options{}, ethAt(t0, ether4(ipv4(6, "192.168.86.245", "17.253.97.203", seg)))))
	if f.SrcBytes != 295 || f.SrcPort != "63690" || f.DstPort != "80" {
		t.Errorf("got %+v", f)
	}
}

// R-DEC-5: TL = 0 (segmentation offload) → len(F) − 14 − H − HL: 40 captured payload bytes → 40.
func TestRDEC5TotalLengthZero(t *testing.T) {
	pkt := v4{proto: 6, src: "192.168.1.2", dst: "93.184.216.34", setTL: true, tl: 0}.build(tcpSeg(50000, 443, make([]byte, 40)))
	f := only(t, run(Options{}, ethAt(t0, ether4(pkt))))
	if f.SrcBytes != 40 {
		t.Errorf("TL 0: srcBytes %d, want 40", f.SrcBytes)
	}
}

// R-DEC-5, R-PKT-4: IPv4 total length 30 with a 20-byte TCP header → 30 − 20 − 20 = −10, not clamped.
func TestRDEC5TotalLength30(t *testing.T) {
	pkt := v4{proto: 6, src: "192.168.1.2", dst: "93.184.216.34", setTL: true, tl: 30}.build(tcpSeg(50000, 443, nil))
	f := only(t, run(Options{}, ethAt(t0, ether4(pkt))))
	if f.SrcBytes != -10 || f.SrcPkts != 1 {
		t.Errorf("TL 30: %+v, want srcBytes −10", countsOf(f))
	}
}

// R-DEC-5: payload counts come from header fields, so a snaplen-cut frame counts its full payload.
func TestRDEC5SnaplenCutCountsFullPayload(t *testing.T) {
	pkt := v4{proto: 6, src: "192.168.1.2", dst: "93.184.216.34", setTL: true, tl: 1500}.build(tcpSeg(50000, 443, make([]byte, 6)))
	f := only(t, run(Options{}, ethAt(t0, ether4(pkt))))
	if f.SrcBytes != 1460 {
		t.Errorf("srcBytes %d, want 1460", f.SrcBytes)
	}
}

// R-DEC-6: UDP payload = UDP length − 8 (IP length ignored); length 252 → 244; length 0 → −8 (quirk).
func TestRDEC6UDPLength(t *testing.T) {
	dhcp := ether4(ipv4(17, "0.0.0.0", "255.255.255.255", udpLen(68, 67, 252, make([]byte, 244))))
	f := only(t, run(Options{}, ethAt(1617652276.543011, dhcp)))
	if f.SrcBytes != 244 || ends(f) != (endpoints{"0.0.0.0", "68", "255.255.255.255", "67"}) {
		t.Errorf("testCase3-like DHCP: %+v", f)
	}
	zero := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", udpLen(40000, 53, 0, make([]byte, 30))))
	f = only(t, run(Options{}, ethAt(t0, zero)))
	if f.SrcBytes != -8 {
		t.Errorf("UDP length 0: srcBytes %d, want −8", f.SrcBytes)
	}
	// The IP total length plays no part.
	odd := ether4(v4{proto: 17, src: "192.168.1.2", dst: "8.8.8.8", setTL: true, tl: 9999}.build(udpDgram(40000, 53, make([]byte, 7))))
	f = only(t, run(Options{}, ethAt(t0, odd)))
	if f.SrcBytes != 7 {
		t.Errorf("UDP with odd IP length: srcBytes %d, want 7", f.SrcBytes)
	}
}

// R-DEC-11 (second half): a UDP frame cut after two bytes of UDP header is processed with R-CONV-1:
// dst port 0 and −8 bytes.
func TestRDEC11TruncatedUDP(t *testing.T) {
	full := ether4(ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(40000, 53, make([]byte, 30))))
	cut := full[:14+20+2]
	f := only(t, run(Options{}, ethAt(t0, cut)))
	if f.SrcBytes != -8 || f.SrcPort != "40000" || f.DstPort != "0" {
		t.Errorf("truncated UDP: %+v", f)
	}
}

// R-DEC-11: a TCP frame without the data-offset byte makes the reference abort; the engine skips it and
// counts it in Stats.Truncated (product decision documented in the engine).
func TestRDEC11TruncatedTCPSkipped(t *testing.T) {
	full := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, nil)))
	cut := full[:14+20+12] // data offset byte at T+12 missing
	e := NewEngine(Options{})
	e.Packet(LinkEthernet, t0, cut)
	if st := e.Stats(); st.Truncated != 1 || st.Handled != 0 {
		t.Errorf("stats %+v, want one truncated frame", st)
	}
	s := e.Flush(nil)
	none(t, s)
	if s.Start != t0 {
		t.Errorf("S = %v, want %v", s.Start, t0)
	}
}

// R-DEC-7: ICMP payload comes from the captured length, so Ethernet padding counts: a 60-byte padded
// echo with no data → 60 − 14 − 20 − 8 = 18. Ports are "" (R-DEC-4).
func TestRDEC7ICMPPaddingCounts(t *testing.T) {
	frame := pad(ether4(ipv4(1, "192.168.1.2", "8.8.8.8", icmpEcho(8, nil))), 60)
	f := only(t, run(Options{}, ethAt(t0, frame)))
	if f.Protocol != ProtoICMP || f.SrcBytes != 18 || f.SrcPort != "" || f.DstPort != "" {
		t.Errorf("padded echo: %+v", f)
	}
	// testCase6: 98-byte pings → 56 bytes each.
	ping := ether4(ipv4(1, "10.0.2.15", "142.250.80.36", icmpEcho(8, make([]byte, 56))))
	pong := ether4(ipv4(1, "142.250.80.36", "10.0.2.15", icmpEcho(0, make([]byte, 56))))
	f = only(t, run(Options{}, ethAt(1, ping), ethAt(2, pong), ethAt(3, ping), ethAt(4, pong), ethAt(5, ping), ethAt(6, pong)))
	if len(ping) != 98 || countsOf(f) != (counts{3, 168, 3, 168}) || f.SrcAddr != "10.0.2.15" {
		t.Errorf("pings: %+v", f)
	}
}

// R-DEC-7: ICMPv6 subtracts 4: a 1294-byte frame → 1294 − 14 − 40 − 4 = 1236 (testCase23).
func TestRDEC7ICMPv6(t *testing.T) {
	msg := icmpEcho(2, make([]byte, 1294-14-40-8)) // Packet Too Big
	frame := ether6(ipv6(58, "2001:470:1:18::3:1280", "2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6", msg))
	f := only(t, run(Options{}, ethAt(t0, frame)))
	if len(frame) != 1294 || f.SrcBytes != 1236 || f.Protocol != ProtoICMP {
		t.Errorf("ICMPv6: %+v", f)
	}
	if f.SrcAddr != "2001:470:1:18::3:1280" || f.DstAddr != "2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6" {
		t.Errorf("ICMPv6 ends: %+v (R-DIR-N1: neither end local, the sender is the source)", ends(f))
	}
}

// R-DEC-7: ICMP under IPv6 (P = 1) and ICMPv6 under IPv4 (P = 58) are not recognised.
func TestRDEC7MismatchedICMPDropped(t *testing.T) {
	a := ether6(ipv6(1, "2001:4860::1", "2607:f8b0::2", icmpEcho(8, make([]byte, 20))))
	b := ether4(ipv4(58, "192.168.1.2", "8.8.8.8", icmpEcho(128, make([]byte, 20))))
	none(t, run(Options{}, ethAt(1, a), ethAt(2, b)))
}

// R-DEC-8: GRE 0x0800 — testCase32: 138-byte frames, inner ICMP 1.1.1.1 ↔ 2.2.2.2 → 72 bytes each; the
// tunnel end points do not appear.
func TestRDEC8GREIPv4(t *testing.T) {
	req := ipv4(1, "1.1.1.1", "2.2.2.2", icmpEcho(8, make([]byte, 72)))
	rep := ipv4(1, "2.2.2.2", "1.1.1.1", icmpEcho(0, make([]byte, 72)))
	out := ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x0800, req)))
	back := ether4(ipv4(47, "10.0.0.2", "10.0.0.1", gre(0x0800, rep)))
	if len(out) != 138 {
		t.Fatalf("frame %d bytes", len(out))
	}
	var frames []in
	for i := 0; i < 5; i++ {
		frames = append(frames, ethAt(1214049966.434897+float64(i), out), ethAt(1214049966.434897+float64(i)+0.1, back))
	}
	s := run(Options{}, frames...)
	f := only(t, s)
	if f.SrcAddr != "1.1.1.1" || f.DstAddr != "2.2.2.2" || countsOf(f) != (counts{5, 360, 5, 360}) {
		t.Errorf("GRE: %+v", f)
	}
	if s.Start != 1214049966.434897 {
		t.Errorf("S = %v", s.Start)
	}
}

// R-DEC-8: GRE 0x6558 carries a whole Ethernet frame; the new frame is F[T+4..].
func TestRDEC8GRETransparentEthernet(t *testing.T) {
	inner := ether4(ipv4(17, "8.8.4.4", "9.9.9.9", udpDgram(3000, 4000, make([]byte, 11))))
	frame := ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x6558, inner)))
	f := only(t, run(Options{}, ethAt(t0, frame)))
	want := endpoints{"8.8.4.4", "3000", "9.9.9.9", "4000"}
	if ends(f) != want || f.SrcBytes != 11 || f.Protocol != ProtoUDP {
		t.Errorf("GRE 0x6558: %+v", f)
	}
}

// R-DEC-8: GRE with an inner IPv6 packet behind the outer link header.
func TestRDEC8GREIPv6Inner(t *testing.T) {
	inner := ipv6(17, "2001:4860::1", "2607:f8b0::2", udpDgram(3000, 4000, make([]byte, 3)))
	frame := ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x86DD, inner)))
	f := only(t, run(Options{}, ethAt(t0, frame)))
	if f.SrcAddr != "2001:4860::1" || f.SrcBytes != 3 {
		t.Errorf("GRE/IPv6: %+v", f)
	}
}

// R-DEC-8: IPIP (protocol 4): the new frame is F[0..14) ++ F[T..].
func TestRDEC8IPIP(t *testing.T) {
	inner := ipv4(6, "8.8.4.4", "9.9.9.9", tcpSeg(3000, 4000, make([]byte, 9)))
	frame := ether4(ipv4(4, "10.0.0.1", "10.0.0.2", inner))
	f := only(t, run(Options{}, ethAt(t0, frame)))
	if ends(f) != (endpoints{"8.8.4.4", "3000", "9.9.9.9", "4000"}) || f.SrcBytes != 9 || f.Protocol != ProtoTCP {
		t.Errorf("IPIP: %+v", f)
	}
}

// R-DEC-8: tunnels nest (GRE inside IPIP inside IPv6).
func TestRDEC8Nested(t *testing.T) {
	innermost := ipv4(17, "8.8.4.4", "9.9.9.9", udpDgram(3000, 4000, make([]byte, 5)))
	greLayer := ipv4(47, "10.1.0.1", "10.1.0.2", gre(0x0800, innermost))
	ipip := ipv6(4, "2001:db8::1", "2001:db8::2", greLayer)
	f := only(t, run(Options{}, ethAt(t0, ether6(ipip))))
	if ends(f) != (endpoints{"8.8.4.4", "3000", "9.9.9.9", "4000"}) || f.SrcBytes != 5 {
		t.Errorf("nested: %+v", f)
	}
}

// R-DEC-8: 6in4 (protocol 41) is not decapsulated: no flow, but the frame counts for S.
func TestRDEC8SixInFourNotDecapsulated(t *testing.T) {
	inner := ipv6(17, "2001:4860::1", "2607:f8b0::2", udpDgram(3000, 4000, make([]byte, 5)))
	s := run(Options{}, ethAt(t0, ether4(ipv4(41, "10.0.0.1", "10.0.0.2", inner))))
	none(t, s)
	if s.Start != t0 {
		t.Errorf("S = %v", s.Start)
	}
}

// R-DEC-9, R-DEC-10: on Ethernet, other protocols (IGMP, ESP, …) make no flow.
func TestRDEC9OtherProtocolsDropped(t *testing.T) {
	igmp := pad(ether4(v4{proto: 2, src: "192.168.1.10", dst: "224.0.0.22", opts: []byte{0x94, 4, 0, 0}}.build([]byte{0x22, 0, 0, 0, 0, 0, 0, 0})), 60)
	esp := ether4(ipv4(50, "192.168.1.10", "8.8.8.8", make([]byte, 40)))
	s := run(Options{}, ethAt(5, igmp), ethAt(6, esp))
	none(t, s)
	if s.Start != 5 {
		t.Errorf("S = %v, want 5 (R-OUT-9: only IGMP gives the time of the first IP frame)", s.Start)
	}
}

// R-DEC-10 (quirk): IGMP over a Linux cooked v1 capture is handled unconditionally: numeric ports from
// the first four transport bytes, label "", −1 bytes per packet.
func TestRDEC10CookedIGMP(t *testing.T) {
	// IGMPv3 membership report: type 0x22, reserved 0, checksum 0 (as in the synthetic check), behind an
	// IPv4 header with the Router Alert option.
	igmp := []byte{0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0xef, 0xff, 0xff, 0xfa}
	pkt := v4{proto: 2, src: "192.168.1.10", dst: "224.0.0.22", opts: []byte{0x94, 4, 0, 0}, ttl: 1}.build(igmp)
	f := only(t, run(Options{}, in{LinkLinuxSLL, t0, sll(0x0800, pkt)}))
	if f.SrcAddr+":"+f.SrcPort != "192.168.1.10:8704" || f.DstAddr+":"+f.DstPort != "224.0.0.22:0" {
		t.Errorf("ends %+v", ends(f))
	}
	if f.Protocol != ProtoOther || f.SrcBytes != -1 || f.SrcPkts != 1 || f.Identifier != "" {
		t.Errorf("cooked IGMP: %+v", f)
	}
}

// R-DEC-10: ordinary protocols in a cooked capture go through the two-byte strip; IPv6 is dropped.
func TestRDEC10CookedCapture(t *testing.T) {
	udp := sll(0x0800, ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(40000, 53, make([]byte, 12))))
	tcp := sll(0x0800, ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, make([]byte, 7))))
	icmp := sll(0x0800, ipv4(1, "192.168.1.2", "8.8.8.8", icmpEcho(8, make([]byte, 4))))
	v6 := sll(0x86DD, ipv6(17, "2001:4860::1", "2607:f8b0::2", udpDgram(3000, 4000, make([]byte, 5))))
	s := run(Options{}, in{LinkLinuxSLL, 4, v6}, in{LinkLinuxSLL, 5, udp}, in{LinkLinuxSLL, 6, tcp}, in{LinkLinuxSLL, 7, icmp})
	if len(s.Flows) != 3 {
		t.Fatalf("flows %+v", s.Flows)
	}
	if s.Start != 4 {
		t.Errorf("S = %v: the cooked IPv6 frame is an IP frame (R-PCAP-4)", s.Start)
	}
	got := []counts{countsOf(s.Flows[0]), countsOf(s.Flows[1]), countsOf(s.Flows[2])}
	// ICMP: 48-byte cooked frame, 46 bytes after the two-byte strip → 46 − 14 − 20 − 8 = 4.
	want := []counts{{1, 12, 0, 0}, {1, 7, 0, 0}, {1, 4, 0, 0}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("flow %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if s.Flows[0].Protocol != ProtoUDP || s.Flows[1].Protocol != ProtoTCP || s.Flows[2].Protocol != ProtoICMP {
		t.Errorf("labels %v %v %v", s.Flows[0].Protocol, s.Flows[1].Protocol, s.Flows[2].Protocol)
	}
}

// R-DEC-10: the cooked test never matches ordinary Ethernet frames.
func TestRDEC10CookedTestLayout(t *testing.T) {
	if isCookedV4(ether4(ipv4(2, "192.168.1.10", "224.0.0.22", make([]byte, 8)))) {
		t.Error("an Ethernet frame passed the cooked test")
	}
	if !isCookedV4(sll(0x0800, ipv4(2, "192.168.1.10", "224.0.0.22", make([]byte, 8)))) {
		t.Error("a cooked frame failed the cooked test")
	}
}

// R-DEC-1: a version nibble other than 4 or 6 is not decodable.
func TestRDEC1BadVersion(t *testing.T) {
	pkt := ipv4(17, "192.168.1.2", "8.8.8.8", udpDgram(1, 2, make([]byte, 20)))
	pkt[0] = 0x55
	none(t, run(Options{}, ethAt(t0, ether4(pkt))))
}

// decode is allocation-free and never reads past the frame on arbitrary truncations of real frames.
func TestDecodeTruncations(t *testing.T) {
	frames := [][]byte{
		ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, make([]byte, 10)))),
		ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x6558, ether4(ipv4(17, "1.1.1.1", "2.2.2.2", udpDgram(1, 2, nil)))))),
		ether6(ipv6(4, "2001:db8::1", "2001:db8::2", ipv4(47, "10.1.0.1", "10.1.0.2", gre(0x0800, ipv4(1, "1.1.1.1", "2.2.2.2", icmpEcho(8, nil)))))),
	}
	var d decoder
	for _, f := range frames {
		for n := 0; n <= len(f); n++ {
			cut := bytes.Clone(f[:n])
			var r decoded
			d.decodeFrame(cut, &r)
		}
	}
}

// R-DEC-11 departure (docs/conversion.md): an IPv6 frame too short for its addresses is skipped, "counted,
// and warned about at the end" — the warning in convert.go is driven by Stats.Truncated.
func TestRDEC11ShortIPv6CountedTruncated(t *testing.T) {
	full := ether6(ipv6(6, "2001:470:1:18::3", "2607:fb90:d726:7b19::1", tcpSeg(50000, 443, nil)))
	e := NewEngine(Options{})
	e.Packet(LinkEthernet, 1, full[:50])
	if st := e.Stats(); st.Truncated != 1 {
		t.Errorf("stats %+v: the 50-byte IPv6 frame is not counted as truncated (no warning)", st)
	}
}
