package convert

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Hand-built frames for the convert tests (header fields set byte for byte, as the rules read them).

func ipb(s string) []byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

func ethFrame(etype uint16, payload []byte) []byte {
	f := []byte{0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, byte(etype >> 8), byte(etype)}
	return append(f, payload...)
}

func vlanFrame(id, etype uint16, payload []byte) []byte {
	return ethFrame(0x8100, append([]byte{byte(id >> 8), byte(id), byte(etype >> 8), byte(etype)}, payload...))
}

// ip4 builds an IPv4 packet; opts is a multiple of 4 bytes.
func ip4(proto byte, src, dst string, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	p := make([]byte, hl)
	p[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(p[2:4], uint16(hl+len(payload)))
	p[8] = 64
	p[9] = proto
	copy(p[12:16], ipb(src))
	copy(p[16:20], ipb(dst))
	copy(p[20:], opts)
	return append(p, payload...)
}

// ip6 builds an IPv6 packet whose fixed header's Next Header is next.
func ip6(next byte, src, dst string, payload []byte) []byte {
	p := make([]byte, 40)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(payload)))
	p[6] = next
	p[7] = 64
	copy(p[8:24], ipb(src))
	copy(p[24:40], ipb(dst))
	return append(p, payload...)
}

// ext6 returns an IPv6 extension header (hop-by-hop, routing, destination options: 8 bytes) followed by
// the payload; fragment headers have the same 8-byte size.
func ext6(next byte, payload []byte) []byte {
	return append([]byte{next, 0, 0, 0, 0, 0, 0, 0}, payload...)
}

func tcpSeg(sport, dport uint16, flags byte, payload []byte) []byte {
	s := make([]byte, 20)
	binary.BigEndian.PutUint16(s[0:2], sport)
	binary.BigEndian.PutUint16(s[2:4], dport)
	binary.BigEndian.PutUint32(s[4:8], 1)
	s[12] = 5 << 4
	s[13] = flags
	binary.BigEndian.PutUint16(s[14:16], 65535)
	return append(s, payload...)
}

func udpDgram(sport, dport uint16, payload []byte) []byte {
	d := make([]byte, 8)
	binary.BigEndian.PutUint16(d[0:2], sport)
	binary.BigEndian.PutUint16(d[2:4], dport)
	binary.BigEndian.PutUint16(d[4:6], uint16(8+len(payload)))
	return append(d, payload...)
}

func icmpMsg(typ byte, data []byte) []byte {
	return append([]byte{typ, 0, 0, 0, 0, 1, 0, 1}, data...)
}

// sllFrame is a Linux cooked v1 frame; addrLen 6 is what an Ethernet device gives.
func sllFrame(proto uint16, addrLen uint16, payload []byte) []byte {
	f := make([]byte, 16)
	binary.BigEndian.PutUint16(f[2:4], 1)
	binary.BigEndian.PutUint16(f[4:6], addrLen)
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x09})
	binary.BigEndian.PutUint16(f[14:16], proto)
	return append(f, payload...)
}

// dnsName is a name in wire form without compression.
func dnsName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// dnsMsg builds DNS messages whose record owners are compression pointers, as real servers write them.
type dnsMsg struct{ b []byte }

func newDNS(flags uint16, qd, an, ns, ar int) *dnsMsg {
	m := &dnsMsg{b: make([]byte, 12)}
	binary.BigEndian.PutUint16(m.b[0:2], 0x1c2d)
	binary.BigEndian.PutUint16(m.b[2:4], flags)
	binary.BigEndian.PutUint16(m.b[4:6], uint16(qd))
	binary.BigEndian.PutUint16(m.b[6:8], uint16(an))
	binary.BigEndian.PutUint16(m.b[8:10], uint16(ns))
	binary.BigEndian.PutUint16(m.b[10:12], uint16(ar))
	return m
}

func (m *dnsMsg) question(name string, qtype uint16) int {
	off := len(m.b)
	m.b = append(m.b, dnsName(name)...)
	m.b = binary.BigEndian.AppendUint16(m.b, qtype)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	return off
}

// rr appends a record owned by the name at ownerOff and returns the offset of its RDATA.
func (m *dnsMsg) rr(ownerOff int, typ uint16, rdata []byte) int {
	m.b = binary.BigEndian.AppendUint16(m.b, 0xC000|uint16(ownerOff))
	m.b = binary.BigEndian.AppendUint16(m.b, typ)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	m.b = binary.BigEndian.AppendUint32(m.b, 300)
	m.b = binary.BigEndian.AppendUint16(m.b, uint16(len(rdata)))
	off := len(m.b)
	m.b = append(m.b, rdata...)
	return off
}

// rec is one frame of a capture being written.
type rec struct {
	t    time.Time
	data []byte
}

// at returns a time from whole seconds and nanoseconds.
func at(sec, nsec int64) time.Time { return time.Unix(sec, nsec) }

// writePcap writes a classic pcap file with gopacket's writer (µs, or ns when nano is set).
func writePcap(t *testing.T, path string, link layers.LinkType, nano bool, recs []rec) {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if nano {
		w = pcapgo.NewWriterNanos(&buf)
	}
	if err := w.WriteFileHeader(65535, link); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		ci := gopacket.CaptureInfo{Timestamp: r.t, CaptureLength: len(r.data), Length: len(r.data)}
		if err := w.WritePacket(ci, r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
