package flow

import (
	"net/netip"
	"testing"
)

// R-DIR: one case per row, first directly on Direction, then through the engine with the corpus examples
// docs/bayseflow.md cites, where the deciding frame's sender is A.
func TestRDIRRows(t *testing.T) {
	cases := []struct {
		row          string
		localA, locB bool
		icmp         bool
		pa, pb       int
		want         Side
	}{
		{"R-DIR-L1", true, false, true, 0, 0, SideA},
		{"R-DIR-L1 local B", true, true, true, 0, 0, SideA},
		{"R-DIR-L2", true, false, false, 63690, 80, SideA},
		{"R-DIR-L2 beats L3", true, true, false, 49152, 60000, SideA},
		{"R-DIR-L3", true, true, false, 43591, 53987, SideB},
		{"R-DIR-L3 edge 49151 is not above", true, true, false, 49151, 49151, SideA},
		{"R-DIR-L4", true, true, false, 22256, 53, SideA},
		{"R-DIR-L4 edge 1023", true, false, false, 40000, 1023, SideA},
		{"R-DIR-L5 equal ports keep A", true, true, false, 5353, 5353, SideA},
		{"R-DIR-L5 B higher", true, false, false, 23371, 37411, SideB},
		{"R-DIR-L5 A higher", true, false, false, 37411, 23371, SideA},
		{"R-DIR-N1 B not local", false, false, true, 0, 0, SideA},
		{"R-DIR-N1 B local", false, true, true, 0, 0, SideB},
		{"R-DIR-N2", false, false, false, 5174, 5060, SideA},
		{"R-DIR-N2 edge 1023", false, false, false, 1023, 5060, SideB}, // falls to N3
		{"R-DIR-N3 A higher", false, false, false, 58527, 123, SideA},
		{"R-DIR-N3 B higher", false, true, false, 443, 50000, SideB},
		{"R-DIR-N3 equal", false, true, false, 2000, 2000, SideA},
	}
	for _, c := range cases {
		if got := Direction(c.localA, c.locB, c.icmp, c.pa, c.pb); got != c.want {
			t.Errorf("%s: Direction(%v,%v,%v,%d,%d) = %v, want %v", c.row, c.localA, c.locB, c.icmp, c.pa, c.pb, got, c.want)
		}
	}
}

// R-DIR through the engine, on the corpus examples of docs/bayseflow.md's table.
func TestRDIREngine(t *testing.T) {
	udp := func(src string, sp uint16, dst string, dp uint16) []byte {
		return ether4(ipv4(17, src, dst, udpDgram(sp, dp, make([]byte, 4))))
	}
	tcp := func(src string, sp uint16, dst string, dp uint16) []byte {
		return ether4(ipv4(6, src, dst, tcpSeg(sp, dp, nil)))
	}
	icmp := func(src, dst string) []byte { return ether4(ipv4(1, src, dst, icmpEcho(8, nil))) }
	cases := []struct {
		row   string
		frame []byte
		want  string // "src -> dst" as written in the .bf (ports included unless ICMP)
		srcP  int64  // srcPkts after the one frame
	}{
		{"R-DIR-L1", icmp("10.0.2.15", "142.250.80.36"), "10.0.2.15 -> 142.250.80.36", 1},
		{"R-DIR-L2", tcp("192.168.86.245", 63690, "17.253.97.203", 80), "192.168.86.245:63690 -> 17.253.97.203:80", 1},
		{"R-DIR-L2 local to local", tcp("10.0.1.5", 49709, "10.0.0.4", 88), "10.0.1.5:49709 -> 10.0.0.4:88", 1},
		{"R-DIR-L3", tcp("192.168.86.193", 43591, "192.168.86.245", 53987), "192.168.86.245:53987 -> 192.168.86.193:43591", 0},
		{"R-DIR-L4", udp("192.168.86.245", 22256, "192.168.86.1", 53), "192.168.86.245:22256 -> 192.168.86.1:53", 1},
		{"R-DIR-L4 DHCP", udp("0.0.0.0", 68, "255.255.255.255", 67), "0.0.0.0:68 -> 255.255.255.255:67", 1},
		{"R-DIR-L5 kept", udp("192.168.86.245", 5353, "224.0.0.251", 5353), "192.168.86.245:5353 -> 224.0.0.251:5353", 1},
		{"R-DIR-L5 flipped", udp("250.57.81.136", 23371, "51.11.1.191", 37411), "51.11.1.191:37411 -> 250.57.81.136:23371", 0},
		{"R-DIR-N1 kept", icmp("1.1.1.1", "2.2.2.2"), "1.1.1.1 -> 2.2.2.2", 1},
		{"R-DIR-N1 multicast becomes source", icmp("1.0.0.10", "224.0.0.1"), "224.0.0.1 -> 1.0.0.10", 0},
		{"R-DIR-N2", udp("51.15.146.240", 5174, "198.71.247.91", 5060), "51.15.146.240:5174 -> 198.71.247.91:5060", 1},
		{"R-DIR-N3 A", udp("51.15.2.174", 58527, "198.71.247.91", 123), "51.15.2.174:58527 -> 198.71.247.91:123", 1},
		{"R-DIR-N3 B", tcp("93.184.216.34", 443, "192.168.1.2", 40000), "192.168.1.2:40000 -> 93.184.216.34:443", 0},
		{"R-DIR-N3 IPv6", ether6(ipv6(6, "2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6", "2600:1403:9c00:30::17c1:6a8e", tcpSeg(58740, 80, nil))),
			"2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6:58740 -> 2600:1403:9c00:30::17c1:6a8e:80", 1},
	}
	for _, c := range cases {
		f := only(t, run(Options{}, ethAt(t0, c.frame)))
		got := f.SrcAddr
		if f.Protocol != ProtoICMP {
			got += ":" + f.SrcPort
		}
		got += " -> " + f.DstAddr
		if f.Protocol != ProtoICMP {
			got += ":" + f.DstPort
		}
		if got != c.want || f.SrcPkts != c.srcP || f.SrcPkts+f.DstPkts != 1 {
			t.Errorf("%s: got %s (srcPkts %d dstPkts %d), want %s (srcPkts %d)", c.row, got, f.SrcPkts, f.DstPkts, c.want, c.srcP)
		}
	}
}

// R-DIR: only the first frame of a flow decides; later frames the other way round change nothing.
func TestRDIRFirstFrameOnly(t *testing.T) {
	a := ether4(ipv4(6, "192.168.86.193", "192.168.86.245", tcpSeg(43591, 53987, make([]byte, 3))))
	b := ether4(ipv4(6, "192.168.86.245", "192.168.86.193", tcpSeg(53987, 43591, make([]byte, 5))))
	f := only(t, run(Options{}, ethAt(1, a), ethAt(2, b), ethAt(3, b)))
	if f.SrcAddr != "192.168.86.245" || countsOf(f) != (counts{2, 10, 1, 3}) {
		t.Errorf("got %+v %+v", ends(f), countsOf(f))
	}
}

// R-LOC-1: the fixed list, including the ranges later CPython releases changed.
func TestRLOC1(t *testing.T) {
	local := []string{"0.0.0.0", "10.1.2.3", "127.0.0.1", "169.254.1.1", "172.16.0.1", "172.31.255.255",
		"192.0.0.7", "192.0.0.170", "192.0.0.171", "192.0.2.1", "192.168.86.245", "198.18.0.1", "198.19.255.255",
		"198.51.100.1", "203.0.113.9", "224.0.0.251", "225.65.236.118", "239.255.255.250", "250.57.81.136",
		"255.255.255.255", "::1", "::", "::ffff:1.2.3.4", "100::1", "2001::1", "2001:1ff:ffff::1", "2001:2::1",
		"2001:db8::1", "2001:10::1", "2001:20::1", "fc00::1", "fd12::1", "fe80::1", "ff02::1"}
	notLocal := []string{"1.1.1.1", "8.8.8.8", "100.64.0.1", "172.32.0.1", "192.0.0.8", "192.0.0.172", "192.0.1.1",
		"198.20.0.1", "223.255.255.255", "2001:200::1", "2001:470:1:18::3:1280", "2607:fb90::1", "::2"}
	for _, s := range local {
		if !IsLocal(netip.MustParseAddr(s)) {
			t.Errorf("%s should be local", s)
		}
	}
	for _, s := range notLocal {
		if IsLocal(netip.MustParseAddr(s)) {
			t.Errorf("%s should not be local", s)
		}
	}
}

// R-OUT-7: address text as Python's ipaddress prints it; IPv4-mapped in hex.
func TestROUT7AddrText(t *testing.T) {
	cases := map[string]string{
		"::ffff:1.2.3.4":       "::ffff:102:304",
		"::ffff:0.0.0.0":       "::ffff:0:0",
		"::ffff:255.0.0.255":   "::ffff:ff00:ff",
		"::1.2.3.4":            "::102:304",
		"2001:0:0:1:0:0:0:1":   "2001:0:0:1::1",
		"1:0:0:2:0:0:3:4":      "1::2:0:0:3:4",
		"2001:db8:0:1:1:1:1:1": "2001:db8:0:1:1:1:1:1",
		"FE80::ABCD":           "fe80::abcd",
		"10.0.0.1":             "10.0.0.1",
	}
	for in, want := range cases {
		if got := AddrText(netip.MustParseAddr(in)); got != want {
			t.Errorf("AddrText(%s) = %q, want %q", in, got, want)
		}
	}
	// Through the engine: an IPv6 frame from an IPv4-mapped address.
	frame := ether6(ipv6(17, "::ffff:1.2.3.4", "2607:f8b0::2", udpDgram(50000, 53, nil)))
	f := only(t, run(Options{}, ethAt(t0, frame)))
	if f.SrcAddr != "::ffff:102:304" {
		t.Errorf("engine wrote %q", f.SrcAddr)
	}
}

// R-ERR-6 helper: ParseAddr refuses zones and non-addresses.
func TestParseAddr(t *testing.T) {
	for _, s := range []string{"-", "fe80::1%eth0", "", "1.2.3", "example.com"} {
		if _, ok := ParseAddr(s); ok {
			t.Errorf("ParseAddr(%q) accepted", s)
		}
	}
	if _, ok := ParseAddr("2001:db8::1"); !ok {
		t.Error("ParseAddr refused an IPv6 address")
	}
}
