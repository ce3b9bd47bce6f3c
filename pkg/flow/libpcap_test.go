package flow

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// libpcapMatches returns the indices of the frames of a capture (whose frame i has time i+1 s) that
// libpcap's filter accepts, read with tcpdump.
func libpcapMatches(t *testing.T, path, filter string) map[int]bool {
	t.Helper()
	out, err := exec.Command("tcpdump", "-n", "-tt", "-r", path, filter).Output()
	if err != nil {
		t.Fatalf("tcpdump %q: %v", filter, err)
	}
	match := map[int]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		secText, _, _ := strings.Cut(line, ".")
		sec, err := strconv.Atoi(secText)
		if err != nil {
			t.Fatalf("tcpdump line %q", line)
		}
		match[sec-1] = true
	}
	return match
}

// R-PCAP-3, R-DNS-1: the IP pre-filter is libpcap's "ip or ip6" and the DNS frames those of its
// "port 53". Both are compared with libpcap's compiled filters themselves (through tcpdump) on the
// synthetic traffic mix, frames made to sit on the filters' edges (VLAN tags, fragments, IPv4 options,
// IPv6 extension headers, SCTP, frames cut inside the headers) and thousands of random mutations of
// their headers, for Ethernet and Linux cooked captures.
func TestFiltersAgreeWithLibpcap(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump (libpcap) is not installed: scripts/setup.sh installs it")
	}
	var ip []byte // IPv4 and IPv6 packets, without a link header
	var packets [][]byte
	for _, f := range benchMix(150) {
		packets = append(packets, f.data[14:])
	}
	dns := udpDgram(5353, 53, make([]byte, 30))
	ip = ipv4(17, "10.0.0.1", "10.0.0.53", dns)
	frag := bytes.Clone(ip)
	frag[6], frag[7] = 0x00, 0x10 // fragment offset 16
	mf := bytes.Clone(ip)
	mf[6] = 0x20                                                                                 // more fragments, offset 0
	opts := append(append([]byte{0x46}, ip[1:20]...), append([]byte{1, 1, 1, 1}, ip[20:]...)...) // IHL 6
	packets = append(packets, ip, frag, mf, opts,
		ipv4(6, "10.0.0.1", "10.0.0.53", tcpSeg(53, 40000, nil)),
		ipv4(132, "10.0.0.1", "10.0.0.53", udpDgram(40000, 53, nil)), // SCTP: ports at the same place
		ipv6(17, "2001:db8::1", "2001:db8::53", dns),
		ipv6(0, "2001:db8::1", "2001:db8::53", append([]byte{17, 0, 0, 0, 0, 0, 0, 0}, dns...)),  // hop-by-hop
		ipv6(44, "2001:db8::1", "2001:db8::53", append([]byte{17, 0, 0, 0, 0, 0, 0, 1}, dns...)), // fragment
	)
	rng := rand.New(rand.NewPCG(21, 22))
	var frames [][]byte // Ethernet
	for _, p := range packets {
		et := uint16(0x0800)
		if p[0]>>4 == 6 {
			et = 0x86DD
		}
		frames = append(frames, eth(et, p), vlan(5, et, p))
		for _, cut := range []int{15, 24, 34, 35, 36, 37, 38, 54, 55, 56, 57, 58} {
			if f := eth(et, p); cut < len(f) {
				frames = append(frames, f[:cut])
			}
		}
	}
	// Cut inside the source port, whose first byte alone would read as 53 if clipped reads were used.
	for _, f := range [][]byte{eth(0x0800, ip)[:35], eth(0x86DD, ipv6(17, "2001:db8::1", "2001:db8::53", dns))[:55]} {
		f[len(f)-1] = 53
		frames = append(frames, f)
	}
	base := len(frames)
	mutations := 3000
	if testing.Short() {
		mutations = 300
	}
	for i := 0; i < mutations; i++ {
		f := bytes.Clone(frames[rng.IntN(base)])
		for n := 1 + rng.IntN(3); n > 0 && len(f) > 0; n-- {
			j := rng.IntN(min(len(f), 64))
			switch rng.IntN(4) {
			case 0:
				f[j] = byte(rng.IntN(256))
			case 1:
				f[j] ^= 1 << rng.IntN(8)
			case 2: // the interesting values at the interesting places
				f[j] = []byte{0x08, 0x00, 0x86, 0xdd, 0x81, 6, 17, 132, 53, 0x45, 0x60, 0x4f, 0x20, 0x1f}[rng.IntN(14)]
			default:
				f = f[:rng.IntN(len(f)+1)]
			}
		}
		frames = append(frames, f)
	}
	dir := t.TempDir()
	for _, link := range []struct {
		name string
		lt   layers.LinkType
		ours LinkType
		wrap func([]byte) []byte
	}{
		{"Ethernet", layers.LinkTypeEthernet, LinkEthernet, func(f []byte) []byte { return f }},
		{"Linux cooked", layers.LinkTypeLinuxSLL, LinkLinuxSLL, func(f []byte) []byte {
			if len(f) < 14 {
				return f
			}
			return sll(uint16(f[12])<<8|uint16(f[13]), f[14:])
		}},
	} {
		path := filepath.Join(dir, link.name+".pcap")
		var buf bytes.Buffer
		w := pcapgo.NewWriter(&buf)
		if err := w.WriteFileHeader(262144, link.lt); err != nil {
			t.Fatal(err)
		}
		data := make([][]byte, len(frames))
		for i, f := range frames {
			data[i] = link.wrap(f)
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i+1), 0), CaptureLength: len(data[i]), Length: len(data[i])}
			if err := w.WritePacket(ci, data[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		ipWant := libpcapMatches(t, path, "ip or ip6")
		dnsWant := libpcapMatches(t, path, "port 53")
		e := NewEngine(Options{})
		ipDiffer, dnsDiffer, dnsSeen := 0, 0, 0
		for i, d := range data {
			f, kind := e.normalize(link.ours, d)
			if got := kind != kindNotIP; got != ipWant[i] {
				ipDiffer++
				if ipDiffer <= 5 {
					t.Errorf("%s frame %d (% x): IP frame %v, libpcap's ip or ip6 %v", link.name, i, head(d), got, ipWant[i])
				}
			}
			if link.ours != LinkEthernet {
				continue // cooked captures yield no DNS, whatever the filter (R-DNS-1)
			}
			if dnsWant[i] {
				dnsSeen++
			}
			if got := kind != kindNotIP && isDNSFrame(f, kind); got != dnsWant[i] {
				dnsDiffer++
				if dnsDiffer <= 5 {
					t.Errorf("%s frame %d (% x): DNS frame %v, libpcap's port 53 %v", link.name, i, head(d), got, dnsWant[i])
				}
			}
		}
		if link.ours == LinkEthernet && dnsSeen < 50 {
			t.Errorf("only %d frames matched port 53: the comparison has no teeth", dnsSeen)
		}
		t.Logf("%s: %d frames compared with libpcap's filters (%d IP, %d port 53); %d and %d differ",
			link.name, len(data), len(ipWant), len(dnsWant), ipDiffer, dnsDiffer)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 60)] }
