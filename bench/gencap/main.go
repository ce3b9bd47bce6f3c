// Command gencap writes a large, realistic, reproducible packet capture for benchmarks and demos: many
// hosts resolving names over DNS and then talking TCP (handshake, data both ways, teardown), UDP (QUIC-like
// and NTP) and ICMP to the addresses they resolved, with time advancing at a steady rate.
//
//	go run ./bench/gencap -o big.pcap -size 1GiB
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

func main() {
	out := flag.String("o", "bench.pcap", "output file")
	size := flag.String("size", "1GiB", "approximate file size (KiB, MiB, GiB suffixes)")
	packets := flag.Int64("packets", 0, "stop after this many packets instead of a size")
	seed := flag.Uint64("seed", 1, "random seed (same seed, same file)")
	clients := flag.Int("clients", 2000, "number of local client hosts")
	servers := flag.Int("servers", 50000, "number of distinct server names/addresses")
	rate := flag.Float64("pps", 200000, "packet rate the timestamps advance at (packets per second)")
	start := flag.Int64("start", 1700000000, "time of the first packet (Unix seconds)")
	segment := flag.Int("segment", 1460, "largest TCP payload (MSS), 300 to 1460: smaller gives the packet mix of interactive and API traffic")
	flag.Parse()
	limit, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencap:", err)
		os.Exit(2)
	}
	if *packets > 0 {
		limit = 1 << 62
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencap:", err)
		os.Exit(1)
	}
	if *segment < 300 || *segment > 1460 {
		fmt.Fprintln(os.Stderr, "gencap: -segment must be between 300 and 1460")
		os.Exit(2)
	}
	g := newGen(*seed, *clients, *servers, *rate, *start)
	g.segment = *segment
	w := bufio.NewWriterSize(f, 4<<20)
	g.w = w
	g.header()
	for g.bytes < limit && (*packets == 0 || g.count < *packets) {
		g.session()
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gencap:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "gencap:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gencap: %s: %d packets, %d bytes, %d sessions, %d DNS answers\n", *out, g.count, g.bytes, g.sessions, g.answers)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			mult = m
			s = strings.TrimSuffix(s, suf)
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

type gen struct {
	w        *bufio.Writer
	rng      *rand.Rand
	clients  int
	servers  int
	tick     float64 // seconds between packets
	now      float64
	count    int64
	bytes    int64
	sessions int64
	answers  int64
	buf      []byte
	ipid     uint16
	segment  int
}

func newGen(seed uint64, clients, servers int, pps float64, start int64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clients: clients, servers: servers,
		tick: 1 / pps, now: float64(start), buf: make([]byte, 0, 2048)}
}

func (g *gen) header() {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 1)
	g.w.Write(h[:])
	g.bytes = 24
}

func (g *gen) client() [4]byte {
	c := g.rng.IntN(g.clients)
	return [4]byte{10, byte(1 + c>>16), byte(c >> 8), byte(c)}
}

func (g *gen) server(i int) [4]byte {
	// Public addresses spread over several /8s, never local by R-LOC-1.
	return [4]byte{byte(20 + i%60), byte(i >> 16), byte(i >> 8), byte(i)}
}

var resolver = [4]byte{10, 0, 0, 1}

// session writes one DNS lookup and the traffic that follows it.
func (g *gen) session() {
	g.sessions++
	cli := g.client()
	si := g.rng.IntN(g.servers)
	srv := g.server(si)
	name := fmt.Sprintf("host%d.example%d.com", si, si%97)
	sport := uint16(49152 + g.rng.IntN(16000))
	if g.rng.IntN(100) < 35 { // hosts cache answers: most connections follow no lookup
		g.dns(cli, sport, name, srv)
	}
	switch r := g.rng.IntN(100); {
	case r < 80:
		g.tcp(cli, srv, uint16(32768+g.rng.IntN(28000)), []uint16{443, 80, 22, 8443}[g.rng.IntN(4)])
	case r < 95:
		g.udp(cli, srv, uint16(32768+g.rng.IntN(28000)), []uint16{443, 123, 3478}[g.rng.IntN(3)])
	default:
		g.icmp(cli, srv)
	}
}

func (g *gen) dns(cli [4]byte, sport uint16, name string, ans [4]byte) {
	q := make([]byte, 0, 128)
	q = binary.BigEndian.AppendUint16(q, uint16(g.rng.Uint32()))
	q = append(q, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
	for _, lab := range strings.Split(name, ".") {
		q = append(q, byte(len(lab)))
		q = append(q, lab...)
	}
	q = append(q, 0, 0, 1, 0, 1)
	g.ipv4(cli, resolver, 17, udpHdr(sport, 53, q))
	r := append([]byte(nil), q...)
	r[2], r[3] = 0x81, 0x80
	r[7] = 1 // one answer
	r = append(r, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4)
	r = append(r, ans[:]...)
	g.answers++
	g.ipv4(resolver, cli, 17, udpHdr(53, sport, r))
}

func udpHdr(sp, dp uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func tcpHdr(sp, dp uint16, seq, ack uint32, flags byte, n int) []byte {
	b := make([]byte, 20+n)
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	return b
}

func (g *gen) tcp(cli, srv [4]byte, cp, sp uint16) {
	const syn, ack, psh, fin = 0x02, 0x10, 0x08, 0x01
	g.ipv4(cli, srv, 6, tcpHdr(cp, sp, 1, 0, syn, 0))
	g.ipv4(srv, cli, 6, tcpHdr(sp, cp, 1, 2, syn|ack, 0))
	g.ipv4(cli, srv, 6, tcpHdr(cp, sp, 2, 2, ack, 0))
	rounds := 1 + g.rng.IntN(8)
	bulk := g.rng.IntN(100) < 2 // a few downloads carry most of the bytes
	for i := 0; i < rounds; i++ {
		g.ipv4(cli, srv, 6, tcpHdr(cp, sp, 2, 2, psh|ack, 100+g.rng.IntN(500)))
		resp := 1 + g.rng.IntN(6)
		if bulk {
			resp = 40 + g.rng.IntN(120)
		}
		for j := 0; j < resp; j++ {
			size := g.segment
			if j == resp-1 || g.rng.IntN(2) == 0 {
				size = 60 + g.rng.IntN(g.segment*700/1460)
			}
			g.ipv4(srv, cli, 6, tcpHdr(sp, cp, 2, 2, ack, size))
			if j%2 == 1 || j == resp-1 { // delayed ACK every second segment
				g.ipv4(cli, srv, 6, tcpHdr(cp, sp, 2, 2, ack, 0))
			}
		}
	}
	g.ipv4(cli, srv, 6, tcpHdr(cp, sp, 3, 3, fin|ack, 0))
	g.ipv4(srv, cli, 6, tcpHdr(sp, cp, 3, 4, fin|ack, 0))
	g.ipv4(cli, srv, 6, tcpHdr(cp, sp, 4, 4, ack, 0))
}

func (g *gen) udp(cli, srv [4]byte, cp, sp uint16) {
	n := 1 + g.rng.IntN(10)
	for i := 0; i < n; i++ {
		g.ipv4(cli, srv, 17, udpHdr(cp, sp, make([]byte, 40+g.rng.IntN(g.segment-260))))
		g.ipv4(srv, cli, 17, udpHdr(sp, cp, make([]byte, 40+g.rng.IntN(g.segment-260))))
	}
}

func (g *gen) icmp(cli, srv [4]byte) {
	for i := 0; i < 3; i++ {
		e := make([]byte, 64)
		e[0] = 8
		g.ipv4(cli, srv, 1, e)
		r := make([]byte, 64)
		g.ipv4(srv, cli, 1, r)
	}
}

// ipv4 writes one Ethernet/IPv4 frame as a pcap record.
func (g *gen) ipv4(src, dst [4]byte, proto byte, l4 []byte) {
	b := g.buf[:0]
	b = append(b, 0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00)
	tl := 20 + len(l4)
	g.ipid++
	b = append(b, 0x45, 0, byte(tl>>8), byte(tl), byte(g.ipid>>8), byte(g.ipid), 0x40, 0, 64, proto, 0, 0)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	b = append(b, l4...)
	g.now += g.tick * (0.5 + g.rng.Float64())
	sec := int64(g.now)
	usec := int64((g.now - float64(sec)) * 1e6)
	var rec [16]byte
	binary.LittleEndian.PutUint32(rec[0:], uint32(sec))
	binary.LittleEndian.PutUint32(rec[4:], uint32(usec))
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(b)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(b)))
	g.w.Write(rec[:])
	g.w.Write(b)
	g.buf = b
	g.count++
	g.bytes += int64(16 + len(b))
}
