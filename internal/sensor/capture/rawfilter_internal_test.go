package capture

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// rawPacket builds an IPv4 or IPv6 packet (from the IP header on) with a TCP or UDP header.
func rawPacket(src, dst string, proto byte, sport, dport uint16, fragOff uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	if s.Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(ip[6:], fragOff)
		ip[8], ip[9] = 64, proto
		s4, d4 := s.As4(), d.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		return append(ip, l4...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	ip[6], ip[7] = proto, 64
	s16, d16 := s.As16(), d.As16()
	copy(ip[8:], s16[:])
	copy(ip[24:], d16[:])
	return append(ip, l4...)
}

var filterPackets = map[string][]byte{
	"v4 tcp 10.0.0.1:5000>10.0.0.2:7443":  rawPacket("10.0.0.1", "10.0.0.2", 6, 5000, 7443, 0),
	"v4 tcp 10.0.0.2:7443>10.0.0.1:5000":  rawPacket("10.0.0.2", "10.0.0.1", 6, 7443, 5000, 0),
	"v4 udp 10.0.0.1:53>10.0.0.3:7443":    rawPacket("10.0.0.1", "10.0.0.3", 17, 53, 7443, 0),
	"v4 tcp fragment 10.0.0.1>10.0.0.2":   rawPacket("10.0.0.1", "10.0.0.2", 6, 5000, 7443, 100),
	"v4 icmp 192.0.2.9>10.0.0.2":          rawPacket("192.0.2.9", "10.0.0.2", 1, 0, 0, 0),
	"v4 sctp 10.0.0.5:7443>10.0.0.6:9":    rawPacket("10.0.0.5", "10.0.0.6", 132, 7443, 9, 0),
	"v6 tcp 2001:db8::1:5000>2001:db8::2": rawPacket("2001:db8::1", "2001:db8::2", 6, 5000, 7443, 0),
	"v6 udp 2001:db8::2:53>2001:db8::9":   rawPacket("2001:db8::2", "2001:db8::9", 17, 53, 5353, 0),
	"v6 tcp fe80::1>2001:db8::1":          rawPacket("fe80::1", "2001:db8::1", 6, 80, 443, 0),
}

var filterExprs = []string{
	"",
	"tcp",
	"udp",
	"icmp",
	"ip",
	"ip6",
	"host 10.0.0.1",
	"src host 10.0.0.1",
	"dst host 10.0.0.1",
	"host 2001:db8::1",
	"dst host 2001:db8::2",
	"port 7443",
	"tcp port 7443",
	"udp port 7443",
	"src port 53",
	"tcp dst port 7443",
	"not (host 10.0.0.2 and tcp port 7443)",
	"not (host 10.0.0.2 and tcp port 7443) and not (host 2001:db8::2 and tcp port 7443)",
	"(udp) and not (host 10.0.0.2 and tcp port 7443)",
	"tcp or udp and host 10.0.0.3", // libpcap: (tcp or udp) and host 10.0.0.3
	"! tcp && (port 53 || icmp)",
	"not not ip6",
}

func runFilter(t *testing.T, raw []bpf.RawInstruction, pkt []byte) int {
	t.Helper()
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble: %v", raw)
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("program rejected by the BPF VM: %v", err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return n
}

// What the pure-Go compiler accepts it must compile to programs that say what these hand-checked answers
// say (libpcap's meaning); rawfilter_cgo_internal_test.go also compares it with libpcap itself.
func TestRawFilterSemantics(t *testing.T) {
	cases := []struct {
		expr   string
		accept []string
	}{
		{"not (host 10.0.0.2 and tcp port 7443)", []string{
			"v4 udp 10.0.0.1:53>10.0.0.3:7443", "v4 tcp fragment 10.0.0.1>10.0.0.2", "v4 icmp 192.0.2.9>10.0.0.2",
			"v4 sctp 10.0.0.5:7443>10.0.0.6:9", "v6 tcp 2001:db8::1:5000>2001:db8::2", "v6 udp 2001:db8::2:53>2001:db8::9",
			"v6 tcp fe80::1>2001:db8::1"}},
		{"tcp or udp and host 10.0.0.3", []string{"v4 udp 10.0.0.1:53>10.0.0.3:7443"}},
		{"port 7443", []string{"v4 tcp 10.0.0.1:5000>10.0.0.2:7443", "v4 tcp 10.0.0.2:7443>10.0.0.1:5000",
			"v4 udp 10.0.0.1:53>10.0.0.3:7443", "v4 sctp 10.0.0.5:7443>10.0.0.6:9", "v6 tcp 2001:db8::1:5000>2001:db8::2"}},
		{"dst host 2001:db8::2", []string{"v6 tcp 2001:db8::1:5000>2001:db8::2"}},
	}
	for _, c := range cases {
		raw, err := compileRawIPFilter(262144, c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		for name, pkt := range filterPackets {
			want := 0
			for _, a := range c.accept {
				if a == name {
					want = 262144
				}
			}
			if got := runFilter(t, raw, pkt); got != want {
				t.Errorf("%q on %s: returned %d, want %d", c.expr, name, got, want)
			}
		}
	}
}

func TestRawFilterRefuses(t *testing.T) {
	for expr, want := range map[string]string{
		"ether host 00:11:22:33:44:55":       `"ether"`,
		"host example.com":                   "not an IP address",
		"port 70000":                         "0-65535",
		"(tcp":                               "missing ')'",
		"tcp and":                            "unexpected end",
		"tcp tcp":                            `unexpected "tcp"`,
		strings.Repeat("tcp||", 600) + "tcp": "more than 512 terms",
		strings.Repeat("x", 5000):            "more than 4096",
		strings.Repeat("host 10.0.0.1 or ", 100) + "tcp": "too long",
	} {
		_, err := compileRawIPFilter(65535, expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: error %v, want one containing %q", expr, err, want)
		}
	}
}
