package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// pcapFile builds a classic pcap file by hand: any magic, either byte order, any record lengths.
type pcapFile struct {
	order    binary.ByteOrder
	magic    uint32
	snaplen  uint32
	link     uint32
	modified bool // 24-byte record headers (magic a1b2cd34)
	buf      bytes.Buffer
}

func newPcap(order binary.ByteOrder, magic, snaplen, link uint32) *pcapFile {
	p := &pcapFile{order: order, magic: magic, snaplen: snaplen, link: link, modified: magic == 0xa1b2cd34}
	h := make([]byte, 24)
	order.PutUint32(h[0:4], magic)
	order.PutUint16(h[4:6], 2)
	order.PutUint16(h[6:8], 4)
	order.PutUint32(h[16:20], snaplen)
	order.PutUint32(h[20:24], link)
	p.buf.Write(h)
	return p
}

// record appends a record with the given captured length field (data may be shorter or longer).
func (p *pcapFile) record(sec, frac uint32, caplen uint32, data []byte) {
	n := 16
	if p.modified {
		n = 24
	}
	h := make([]byte, n)
	p.order.PutUint32(h[0:4], sec)
	p.order.PutUint32(h[4:8], frac)
	p.order.PutUint32(h[8:12], caplen)
	p.order.PutUint32(h[12:16], uint32(len(data))+100) // original length: never used
	p.buf.Write(h)
	p.buf.Write(data)
}

func (p *pcapFile) add(sec, frac uint32, data []byte) { p.record(sec, frac, uint32(len(data)), data) }

// frameOf returns n distinct bytes.
func frameOf(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// readAll reads every frame, copying the data, and returns the final error (nil at io.EOF).
func readAll(t *testing.T, data []byte) ([]Frame, error) {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []Frame
	for {
		f, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		f.Data = bytes.Clone(f.Data)
		out = append(out, f)
	}
}

// R-PCAP-1, R-PCAP-2: microsecond and nanosecond pcap in both byte orders; nanoseconds are truncated
// to microseconds; the link type's top 6 bits are cleared.
func TestRPCAP2ClassicVariants(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, nano := range []bool{false, true} {
			magic := uint32(0xa1b2c3d4)
			frac := uint32(246050)
			if nano {
				magic = 0xa1b23c4d
				frac = 246050999
			}
			p := newPcap(order, magic, 65535, 1|0x10000000) // FCS bits set above the link type
			p.add(1617652286, frac, frameOf(60, 1))
			p.add(1617652287, 0, frameOf(42, 2))
			frames, err := readAll(t, p.buf.Bytes())
			if err != nil || len(frames) != 2 {
				t.Fatalf("%v nano=%v: %d frames, %v", order, nano, len(frames), err)
			}
			f := frames[0]
			if f.Sec != 1617652286 || f.Usec != 246050 || f.Link != flow.LinkEthernet || !bytes.Equal(f.Data, frameOf(60, 1)) {
				t.Errorf("%v nano=%v: %+v", order, nano, f)
			}
			if f.Offset != 24 || frames[1].Offset != 24+16+60 {
				t.Errorf("offsets %d %d", f.Offset, frames[1].Offset)
			}
			if flow.FrameTime(f.Sec, f.Usec) != 1617652286.24605 {
				t.Errorf("time %v", flow.FrameTime(f.Sec, f.Usec))
			}
		}
	}
}

// R-PCAP-2: the "modified" a1b2cd34 format has 24-byte record headers.
func TestRPCAP2Modified(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		p := newPcap(order, 0xa1b2cd34, 65535, 1)
		p.add(100, 5, frameOf(50, 3))
		p.add(101, 6, frameOf(70, 4))
		frames, err := readAll(t, p.buf.Bytes())
		if err != nil || len(frames) != 2 || frames[1].Usec != 6 || !bytes.Equal(frames[1].Data, frameOf(70, 4)) {
			t.Errorf("%v: %+v, %v", order, frames, err)
		}
	}
}

// R-PCAP-1: IsCapture accepts the magic numbers only.
func TestRPCAP1Magic(t *testing.T) {
	for _, m := range []uint32{0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1, 0x0a0d0d0a} {
		b := binary.BigEndian.AppendUint32(nil, m)
		if !IsCapture(b) {
			t.Errorf("%08x refused", m)
		}
	}
	for _, b := range [][]byte{nil, {0xa1, 0xb2}, []byte("#separator"), []byte("{\"ts\":1}"), {0, 0, 0, 0}} {
		if IsCapture(b) {
			t.Errorf("%q accepted", b)
		}
		if _, err := NewReader(bytes.NewReader(b)); !errors.Is(err, ErrNotCapture) {
			t.Errorf("NewReader(%q): %v", b, err)
		}
	}
}

// R-PCAP-2: a record whose captured length exceeds the snapshot length is cut to it; the rest is skipped
// and the next record read normally. Many large cut records are read, so that the skipped parts cross
// the reader's internal buffer boundaries.
func TestRPCAP2SnaplenCut(t *testing.T) {
	p := newPcap(binary.LittleEndian, 0xa1b2c3d4, 100, 1)
	const n = 400
	for i := 0; i < n; i++ {
		p.add(uint32(1000+i), uint32(i), frameOf(9000+i, byte(i)))
		p.add(uint32(1000+i), uint32(i)+1, frameOf(60, byte(i)+7))
	}
	rd, err := NewReader(bytes.NewReader(p.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2*n; i++ {
		f, err := rd.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		want := frameOf(60, byte(i/2)+7)
		if i%2 == 0 {
			want = frameOf(9000+i/2, byte(i/2))[:100]
		}
		if !bytes.Equal(f.Data, want) {
			t.Fatalf("record %d: data differs (%d bytes, first %x, want first %x)", i, len(f.Data), f.Data[:4], want[:4])
		}
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Errorf("end: %v", err)
	}
}

// R-PCAP-2: snapshot length 0 or above 2^31−1 means 262144; the modified format on Ethernet allows 14
// more.
func TestRPCAP2SnaplenDefaults(t *testing.T) {
	for _, snap := range []uint32{0, 0x80000000} {
		p := newPcap(binary.LittleEndian, 0xa1b2c3d4, snap, 1)
		p.add(1, 0, frameOf(70000, 0))
		frames, err := readAll(t, p.buf.Bytes())
		if err != nil || len(frames) != 1 || len(frames[0].Data) != 70000 {
			t.Errorf("snaplen %d: %d frames, %v", snap, len(frames), err)
		}
	}
	p := newPcap(binary.LittleEndian, 0xa1b2cd34, 100, 1)
	p.add(1, 0, frameOf(200, 0))
	frames, err := readAll(t, p.buf.Bytes())
	if err != nil || len(frames) != 1 || len(frames[0].Data) != 114 {
		t.Errorf("modified snaplen: %+v, %v", frames, err)
	}
}

// R-PCAP-2: a captured length over 262144 is a read error that ends the reading (ErrTruncated), after
// the frames before it.
func TestRPCAP2CaplenTooLarge(t *testing.T) {
	p := newPcap(binary.LittleEndian, 0xa1b2c3d4, 0, 1)
	p.add(1, 0, frameOf(60, 0))
	p.record(2, 0, 262145, frameOf(100, 0))
	p.add(3, 0, frameOf(60, 0))
	frames, err := readAll(t, p.buf.Bytes())
	if len(frames) != 1 || !errors.Is(err, ErrTruncated) {
		t.Errorf("%d frames, %v", len(frames), err)
	}
	// Exactly 262144 is fine.
	p = newPcap(binary.LittleEndian, 0xa1b2c3d4, 0, 1)
	p.add(1, 0, frameOf(262144, 0))
	frames, err = readAll(t, p.buf.Bytes())
	if len(frames) != 1 || err != nil || len(frames[0].Data) != 262144 {
		t.Errorf("262144: %d frames, %v", len(frames), err)
	}
}

// R-PCAP-2: a truncated last record gives the frames before it and ErrTruncated; a header-only file no
// frames and no error.
func TestRPCAP2TruncatedLastRecord(t *testing.T) {
	p := newPcap(binary.BigEndian, 0xa1b2c3d4, 65535, 1)
	p.add(1, 0, frameOf(60, 0))
	p.add(2, 0, frameOf(61, 0))
	full := p.buf.Bytes()
	for cut := 1; cut < 16+61; cut++ {
		frames, err := readAll(t, full[:len(full)-cut])
		if len(frames) != 1 || !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut %d: %d frames, %v", cut, len(frames), err)
		}
	}
	frames, err := readAll(t, full[:24])
	if len(frames) != 0 || err != nil {
		t.Errorf("header only: %d frames, %v", len(frames), err)
	}
	if _, err := readAll(t, full[:20]); err == nil {
		t.Error("cut file header accepted")
	}
}

// pcapng block helpers (little- or big-endian).
type ngFile struct {
	order binary.AppendByteOrder
	buf   bytes.Buffer
}

func (n *ngFile) block(typ uint32, body []byte) {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	l := uint32(12 + len(body))
	b := n.order.AppendUint32(nil, typ)
	b = n.order.AppendUint32(b, l)
	b = append(b, body...)
	b = n.order.AppendUint32(b, l)
	n.buf.Write(b)
}

func (n *ngFile) section() { n.sectionVersion(1, 0) }

func (n *ngFile) sectionVersion(major, minor uint16) {
	body := n.order.AppendUint32(nil, 0x1A2B3C4D)
	body = n.order.AppendUint16(body, major)
	body = n.order.AppendUint16(body, minor)
	body = n.order.AppendUint64(body, 0xFFFFFFFFFFFFFFFF)
	n.block(0x0A0D0D0A, body)
}

// iface adds an Interface Description Block; tsresol < 0 means no option.
func (n *ngFile) iface(link uint16, snaplen uint32, tsresol int) {
	body := n.order.AppendUint16(nil, link)
	body = n.order.AppendUint16(body, 0)
	body = n.order.AppendUint32(body, snaplen)
	body = n.order.AppendUint16(body, 2) // if_name
	body = n.order.AppendUint16(body, 4)
	body = append(body, "eth0"...)
	if tsresol >= 0 {
		body = n.order.AppendUint16(body, 9)
		body = n.order.AppendUint16(body, 1)
		body = append(body, byte(tsresol), 0, 0, 0)
	}
	body = n.order.AppendUint16(body, 0) // opt_endofopt
	body = n.order.AppendUint16(body, 0)
	n.block(1, body)
}

func (n *ngFile) epb(ifID uint32, ts uint64, data []byte) {
	body := n.order.AppendUint32(nil, ifID)
	body = n.order.AppendUint32(body, uint32(ts>>32))
	body = n.order.AppendUint32(body, uint32(ts))
	body = n.order.AppendUint32(body, uint32(len(data)))
	body = n.order.AppendUint32(body, uint32(len(data)))
	body = append(body, data...)
	n.block(6, body)
}

func (n *ngFile) spb(orig uint32, data []byte) {
	body := n.order.AppendUint32(nil, orig)
	n.block(3, append(body, data...))
}

// R-PCAP-1, R-PCAP-2: pcapng with two sections, two interfaces that agree on link type and snapshot
// length (0 and 262144 are the same once adjusted, as libpcap adjusts them) but not on time resolution
// (default 10^-6, 10^-9, 2^-20), a Simple Packet Block and skipped block types; and single-interface
// files of other link types, one with a frame longer than its snapshot length (libpcap stops there).
func TestPcapng(t *testing.T) {
	a := &ngFile{order: binary.LittleEndian}
	a.section()
	a.iface(1, 0, -1)     // Ethernet, µs
	a.iface(1, 262144, 9) // Ethernet, ns
	a.block(4, []byte{})  // name resolution block: skipped
	a.epb(0, 1617652286*1_000_000+246050, frameOf(60, 1))
	a.epb(1, 1617652286*1_000_000_000+246050999, frameOf(80, 2))
	a.section()            // a second section: its interfaces are numbered from 0 again
	a.iface(1, 0, 0x80|20) // 2^-20 s
	a.epb(0, 1000<<20|1<<19, frameOf(40, 3))
	a.spb(30, frameOf(44, 4)) // original length 30 < data: cut to 30
	raw := &ngFile{order: binary.BigEndian}
	raw.section()
	raw.iface(101, 80, 9) // raw IP, ns, snaplen 80
	raw.epb(0, 1617652286*1_000_000_000+246050999, frameOf(80, 5))
	raw.epb(0, 1617652287*1_000_000_000, frameOf(81, 6)) // longer than the snapshot length: libpcap stops
	cooked := &ngFile{order: binary.LittleEndian}
	cooked.section()
	cooked.iface(113, 0, -1)
	cooked.epb(0, 7, frameOf(40, 6))

	type want struct {
		link flow.LinkType
		sec  uint64
		usec uint32
		n    int
		seed byte
	}
	for _, c := range []struct {
		name string
		data []byte
		want []want
	}{
		{"two sections", a.buf.Bytes(), []want{
			{flow.LinkEthernet, 1617652286, 246050, 60, 1},
			{flow.LinkEthernet, 1617652286, 246050, 80, 2}, // ns truncated
			{flow.LinkEthernet, 1000, 500000, 40, 3},
			{flow.LinkEthernet, 0, 0, 30, 4},
		}},
		{"raw IP, big-endian, snaplen 80", raw.buf.Bytes(), []want{{flow.LinkRaw, 1617652286, 246050, 80, 5}}},
		{"Linux cooked", cooked.buf.Bytes(), []want{{flow.LinkLinuxSLL, 0, 7, 40, 6}}},
	} {
		frames, err := readAll(t, c.data)
		if wantErr := c.data == nil || bytes.Equal(c.data, raw.buf.Bytes()); (err != nil) != wantErr || len(frames) != len(c.want) {
			t.Fatalf("%s: %d frames, %v", c.name, len(frames), err)
		}
		for i, w := range c.want {
			f := frames[i]
			if f.Link != w.link || f.Sec != w.sec || f.Usec != w.usec || !bytes.Equal(f.Data, frameOf(w.n+4, w.seed)[:w.n]) {
				t.Errorf("%s: frame %d: link %v sec %d usec %d len %d, want %+v", c.name, i, f.Link, f.Sec, f.Usec, len(f.Data), w)
			}
		}
	}
	if _, ok := (&Reader{ng: true}).LinkType(); ok {
		t.Error("a pcapng reader reported one link type")
	}
}

// R-PCAP-2: libpcap stops reading a pcapng file at an interface whose link type or snapshot length
// differs from the file's first interface, and at a section in the other byte order; the frames before
// it are the reference's input. The reader stops there too, with ErrMixed.
func TestPcapngMixedStops(t *testing.T) {
	for _, c := range []struct {
		name string
		then func(n *ngFile)
	}{
		{"another link type", func(n *ngFile) { n.iface(113, 0, -1) }},
		{"another snapshot length", func(n *ngFile) { n.iface(1, 65535, -1) }},
		{"another link type in a new section", func(n *ngFile) { n.section(); n.iface(101, 0, -1) }},
		{"a section in the other byte order", func(n *ngFile) {
			b := &ngFile{order: binary.BigEndian}
			b.section()
			b.iface(1, 0, -1)
			n.buf.Write(b.buf.Bytes())
		}},
	} {
		n := &ngFile{order: binary.LittleEndian}
		n.section()
		n.iface(1, 0, -1)
		n.epb(0, 1, frameOf(60, 1))
		c.then(n)
		n.epb(0, 2, frameOf(60, 2))
		frames, err := readAll(t, n.buf.Bytes())
		if len(frames) != 1 || !errors.Is(err, ErrMixed) {
			t.Errorf("%s: %d frames, %v; want 1 frame, then ErrMixed", c.name, len(frames), err)
		}
	}
}

// laterSection builds a file of two sections, the second of the given version, a frame in each.
func laterSection(major, minor uint16) func(n *ngFile) {
	return func(n *ngFile) {
		n.section()
		n.iface(1, 0, -1)
		n.epb(0, 1, frameOf(60, 1))
		n.sectionVersion(major, minor)
		n.iface(1, 0, -1)
		n.epb(0, 2, frameOf(60, 2))
	}
}

// R-PCAP-1, R-PCAP-2: what libpcap refuses to open (a first section of a version other than 1.0 or 1.2,
// no interface description before the first packet or the end) is ErrUnreadable, before any frame; a
// later section of another major version ends the reading like a change of byte order (ErrMixed).
func TestPcapngWhatLibpcapRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		build  func(n *ngFile)
		frames int
		err    error
	}{
		{"version 1.0", func(n *ngFile) { n.section(); n.iface(1, 0, -1); n.epb(0, 1, frameOf(60, 1)) }, 1, nil},
		{"version 1.2", func(n *ngFile) { n.sectionVersion(1, 2); n.iface(1, 0, -1); n.epb(0, 1, frameOf(60, 1)) }, 1, nil},
		{"version 1.1", func(n *ngFile) { n.sectionVersion(1, 1); n.iface(1, 0, -1); n.epb(0, 1, frameOf(60, 1)) }, 0, ErrUnreadable},
		{"version 2.0", func(n *ngFile) { n.sectionVersion(2, 0); n.iface(1, 0, -1); n.epb(0, 1, frameOf(60, 1)) }, 0, ErrUnreadable},
		{"no interface", func(n *ngFile) { n.section(); n.block(4, nil) }, 0, ErrUnreadable},
		{"interface, no packet", func(n *ngFile) { n.section(); n.iface(1, 0, -1) }, 0, nil},
		{"packet before the interface", func(n *ngFile) { n.section(); n.epb(0, 1, frameOf(60, 1)); n.iface(1, 0, -1) }, 0, ErrUnreadable},
		{"simple packet before the interface", func(n *ngFile) { n.section(); n.spb(60, frameOf(60, 1)); n.iface(1, 0, -1) }, 0, ErrUnreadable},
		{"a later section of version 2.0", laterSection(2, 0), 1, ErrMixed},
		{"a later section of version 1.1", laterSection(1, 1), 2, nil},
	} {
		n := &ngFile{order: binary.LittleEndian}
		c.build(n)
		frames, err := readAll(t, n.buf.Bytes())
		if len(frames) != c.frames || (c.err == nil) != (err == nil) || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("%s: %d frames, %v; want %d, %v", c.name, len(frames), err, c.frames, c.err)
		}
	}
}

// pcapng: a packet block naming an unknown interface, or one before any section header, is an error;
// a cut block is ErrTruncated.
func TestPcapngErrors(t *testing.T) {
	a := &ngFile{order: binary.LittleEndian}
	a.section()
	a.iface(1, 0, -1)
	a.epb(0, 1, frameOf(60, 1))
	good := bytes.Clone(a.buf.Bytes())
	a.epb(3, 1, frameOf(60, 1))
	frames, err := readAll(t, a.buf.Bytes())
	if len(frames) != 1 || err == nil || errors.Is(err, ErrTruncated) {
		t.Errorf("unknown interface: %d frames, %v", len(frames), err)
	}
	frames, err = readAll(t, good[:len(good)-5])
	if len(frames) != 0 || !errors.Is(err, ErrTruncated) {
		t.Errorf("cut block: %d frames, %v", len(frames), err)
	}
}

// The reader agrees with gopacket's pcapgo writer (µs and ns) on real frames.
func TestAgainstPcapgo(t *testing.T) {
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{8, 8, 8, 8}}
	udp := &layers.UDP{SrcPort: 5000, DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	pkt := sb.Bytes()
	for _, nano := range []bool{false, true} {
		var buf bytes.Buffer
		var w *pcapgo.Writer
		if nano {
			w = pcapgo.NewWriterNanos(&buf)
		} else {
			w = pcapgo.NewWriter(&buf)
		}
		if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		ts := timeOf(1617652286, 246050123)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(pkt), Length: len(pkt)}, pkt); err != nil {
			t.Fatal(err)
		}
		frames, err := readAll(t, buf.Bytes())
		if err != nil || len(frames) != 1 || frames[0].Usec != 246050 || frames[0].Sec != 1617652286 || !bytes.Equal(frames[0].Data, pkt) {
			t.Errorf("nano=%v: %+v, %v", nano, frames, err)
		}
	}
}

func timeOf(sec, nsec int64) time.Time { return time.Unix(sec, nsec) }

// R-PCAP-1: libpcap opens classic pcap versions 2.0 … 2.4 and DG/UX's 543.0 only; the rest it refuses
// (ErrUnreadable, before any frame).
func TestRPCAP1ClassicVersions(t *testing.T) {
	for _, c := range []struct {
		major, minor uint16
		ok           bool
	}{{2, 4, true}, {2, 0, true}, {2, 3, true}, {543, 0, true}, {2, 5, false}, {1, 0, false}, {3, 4, false}, {543, 1, false}} {
		p := newPcap(binary.LittleEndian, 0xa1b2c3d4, 0, 1)
		b := p.buf.Bytes()
		binary.LittleEndian.PutUint16(b[4:6], c.major)
		binary.LittleEndian.PutUint16(b[6:8], c.minor)
		p.add(1, 2, frameOf(60, 1))
		frames, err := readAll(t, p.buf.Bytes())
		if c.ok && (err != nil || len(frames) != 1) || !c.ok && (!errors.Is(err, ErrUnreadable) || len(frames) != 0) {
			t.Errorf("version %d.%d: %d frames, %v", c.major, c.minor, len(frames), err)
		}
	}
}

// R-PCAP-2: interface options as libpcap reads them: an if_tsresol that is not one byte long, a second
// one, or an option cut short makes the interface unreadable — refused in the first interface
// (ErrUnreadable), the end of the reading in a later one (ErrDamaged).
func TestPcapngInterfaceOptions(t *testing.T) {
	badIface := func(n *ngFile, opt []byte) {
		body := n.order.AppendUint16(nil, 1)
		body = n.order.AppendUint16(body, 0)
		body = n.order.AppendUint32(body, 0)
		n.block(1, append(body, opt...))
	}
	opt := func(code, length uint16, value ...byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, code)
		b = binary.LittleEndian.AppendUint16(b, length)
		b = append(b, value...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	for name, o := range map[string][]byte{
		"if_tsresol of two bytes": opt(9, 2, 6, 6),
		"two if_tsresol":          append(opt(9, 1, 6), opt(9, 1, 9)...),
		"if_tsoffset of 4 bytes":  opt(14, 4, 1, 2, 3, 4),
		"opt_endofopt of length":  opt(0, 4, 0, 0, 0, 0),
		"option cut short":        opt(2, 40, 'e', 't', 'h'),
	} {
		first := &ngFile{order: binary.LittleEndian}
		first.section()
		badIface(first, o)
		first.epb(0, 1, frameOf(60, 1))
		if frames, err := readAll(t, first.buf.Bytes()); len(frames) != 0 || !errors.Is(err, ErrUnreadable) {
			t.Errorf("%s, first interface: %d frames, %v", name, len(frames), err)
		}
		later := &ngFile{order: binary.LittleEndian}
		later.section()
		later.iface(1, 0, -1)
		later.epb(0, 1, frameOf(60, 1))
		badIface(later, o)
		later.epb(0, 2, frameOf(60, 2))
		if frames, err := readAll(t, later.buf.Bytes()); len(frames) != 1 || !errors.Is(err, ErrDamaged) {
			t.Errorf("%s, later interface: %d frames, %v", name, len(frames), err)
		}
	}
}
