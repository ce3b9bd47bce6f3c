// Package pcapfile reads classic pcap (microsecond, nanosecond and the "modified" variant, either byte
// order) and pcapng captures frame by frame, as libpcap delivers them to the reference (R-PCAP-1,
// R-PCAP-2): captured bytes only, times truncated to microseconds, records longer than the snapshot
// length cut to it.
//
// gopacket's pcapgo reader is not used because its semantics differ from libpcap's where docs/bayseflow.md needs
// them (snapshot-length cutting, the modified format, resolution truncation); this reader is also
// allocation-free per frame.
//
// A Reader is not safe for concurrent use; the Data of a Frame is valid only until the next call to Next.
package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// maxSnaplen is libpcap's MAXIMUM_SNAPLEN: a captured length over it is a read error.
const maxSnaplen = 262144

// maxBlock bounds a pcapng block.
const maxBlock = 16 << 20

// Frame is one captured frame.
type Frame struct {
	Link   flow.LinkType
	Sec    uint64
	Usec   uint32
	Data   []byte
	Offset int64 // byte offset of the frame's record in the file
}

// ErrTruncated reports a capture that ends in the middle of a record; the frames before it are valid.
var ErrTruncated = errors.New("capture ends in the middle of a record")

// ErrDamaged reports a record that cannot be read (a bad block length, an unknown interface, …); the
// frames before it are valid. Like libpcap, a reader cannot go on past it: the reading ends there
// (R-PCAP-2).
var ErrDamaged = errors.New("damaged record")

// ErrMixed reports a pcapng file that goes on with a section of another byte order or major version, or
// an interface whose link type or (adjusted) snapshot length differs from the file's first interface.
// libpcap stops reading there with an error, and so the reference's conversion ends there (R-PCAP-2):
// the frames before it are valid.
var ErrMixed = errors.New("libpcap reads no further: the pcapng file changes byte order, version, link type or snapshot length")

// ErrUnreadable reports a capture that libpcap refuses to open, so that the reference stops with an error
// and writes nothing: a pcap file of a version other than 2.0 … 2.4; a pcapng file whose first section
// is of a version other than 1.0 or 1.2, or that has no readable interface description before its first
// packet or its end.
var ErrUnreadable = errors.New("libpcap cannot open this capture")

// ErrNotCapture reports a file that is neither pcap nor pcapng (R-PCAP-1).
var ErrNotCapture = errors.New("not a pcap or pcapng capture file")

// IsCapture reports whether the first bytes of a file carry a pcap or pcapng magic number (R-PCAP-1).
func IsCapture(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	switch binary.BigEndian.Uint32(head) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1, 0x0a0d0d0a:
		return true
	}
	return false
}

// Options are departures from libpcap's reading; the zero value reads as libpcap does.
type Options struct {
	// AllInterfaces reads a pcapng file on where libpcap stops with ErrMixed: past an interface whose
	// link type or snapshot length differs from the first interface's (a file merged by mergecap from
	// captures of different devices), and past a section of the other byte order. Each frame then has
	// its own interface's link type, and is checked against and cut to its own interface's snapshot
	// length. A section of another major version still ends the reading (ErrMixed).
	AllInterfaces bool
}

// Reader reads frames from a capture.
type Reader struct {
	all    bool // Options.AllInterfaces
	mixed  bool // read on (all) past a point where libpcap stops
	r      source
	win    *window // the source's bytes at hand, when it has them in memory (nil for a bufio.Reader)
	copied bool    // the last frame's bytes are a copy that the next record overwrites
	big    bool    // a classic pcap file in big-endian order
	off    int64
	ng     bool
	order  binary.ByteOrder
	buf    []byte
	hdr    [28]byte
	pcap   pcapState
	ifaces []iface
	// The first section's byte order and the file's first interface: libpcap reads a pcapng file only
	// as long as every section and interface agrees with them (see ErrMixed).
	firstOrder binary.ByteOrder
	first      *iface
}

type pcapState struct {
	link     flow.LinkType
	snaplen  int
	nano     bool
	modified bool
}

type iface struct {
	link    flow.LinkType
	snaplen int
	units   uint64 // ticks per second
	offset  int64  // if_tsoffset, seconds
}

// source is what the reader reads from: a buffered reader, or the bytes of a mapped file.
type source interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Size() int
}

// NewReader reads the file header and returns a reader positioned at the first frame.
func NewReader(r io.Reader) (*Reader, error) {
	return newReader(bufio.NewReaderSize(r, 1<<20), Options{})
}

// NewBytesReader reads a capture held in memory (for example a mapped file); frames point into data.
func NewBytesReader(data []byte) (*Reader, error) {
	return newReader(&bytesSource{window{cur: data}}, Options{})
}

type bytesSource struct {
	window // cur is the whole capture
}

// window is the bytes a source has at hand, cur[pos:]; the reader reads whole records from it in place
// when they are there.
type window struct {
	cur []byte
	pos int
	// scratch says that cur is a copy that the next record overwrites (a record that straddled two of
	// the source's buffers), not the source's own memory.
	scratch bool
}

func (b *bytesSource) Peek(n int) ([]byte, error) {
	rest := b.cur[b.pos:]
	if n > len(rest) {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		return rest, io.ErrUnexpectedEOF
	}
	return rest[:n:n], nil
}

func (b *bytesSource) Discard(n int) (int, error) {
	if rest := len(b.cur) - b.pos; n > rest {
		b.pos = len(b.cur)
		return rest, io.EOF
	}
	b.pos += n
	return n, nil
}

func (b *bytesSource) Size() int { return math.MaxInt }

// readFull fills p from the source.
func (rd *Reader) readFull(p []byte) error {
	b, err := rd.r.Peek(len(p))
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	copy(p, b)
	_, _ = rd.r.Discard(len(p))
	return nil
}

func newReader(src source, opts Options) (*Reader, error) {
	rd := &Reader{r: src, all: opts.AllInterfaces}
	switch s := src.(type) {
	case *aheadSource:
		rd.win = &s.window
	case *bytesSource:
		rd.win = &s.window
	}
	head, err := rd.r.Peek(4)
	if err != nil || !IsCapture(head) {
		return nil, ErrNotCapture
	}
	if binary.BigEndian.Uint32(head) == 0x0a0d0d0a {
		rd.ng = true
		return rd, nil
	}
	var h [24]byte
	if err := rd.readFull(h[:]); err != nil {
		return nil, fmt.Errorf("pcap file header: %w", ErrTruncated)
	}
	rd.off = 24
	magic := binary.LittleEndian.Uint32(h[:4])
	rd.order = binary.LittleEndian
	switch magic {
	case 0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34:
	default:
		rd.order, rd.big = binary.BigEndian, true
		magic = binary.BigEndian.Uint32(h[:4])
	}
	// libpcap opens versions 2.0 to 2.4 (and DG/UX's 543.0) only.
	if major, minor := rd.order.Uint16(h[4:6]), rd.order.Uint16(h[6:8]); !(major == 2 && minor <= 4 || major == 543 && minor == 0) {
		return nil, fmt.Errorf("pcap version %d.%d: %w", major, minor, ErrUnreadable)
	}
	rd.pcap.nano = magic == 0xa1b23c4d
	rd.pcap.modified = magic == 0xa1b2cd34
	snap := rd.order.Uint32(h[16:20])
	rd.pcap.link = flow.LinkType(rd.order.Uint32(h[20:24]) & 0x03FFFFFF)
	rd.pcap.snaplen = int(snap)
	if snap == 0 || snap > 0x7FFFFFFF {
		rd.pcap.snaplen = maxSnaplen
	}
	if rd.pcap.modified && rd.pcap.link == flow.LinkEthernet {
		rd.pcap.snaplen += 14
	}
	return rd, nil
}

// LinkType returns the link type of a classic pcap file (pcapng files have one per interface).
func (rd *Reader) LinkType() (flow.LinkType, bool) {
	return rd.pcap.link, !rd.ng
}

// Offset returns the number of bytes consumed so far.
func (rd *Reader) Offset() int64 { return rd.off }

// Next returns the next frame, io.EOF at the end, or an error wrapping ErrTruncated (with the offset)
// when the file is cut in the middle of a record, or ErrDamaged when a record cannot be read.
func (rd *Reader) Next() (Frame, error) {
	rd.copied = false
	var fr Frame
	var err error
	if rd.ng {
		fr, err = rd.nextNG()
		if err != nil && err != io.EOF && rd.first == nil && !errors.Is(err, ErrUnreadable) {
			// libpcap reads up to the first interface description when it opens the file: what goes
			// wrong before it means the file is not opened at all.
			err = fmt.Errorf("%v: %w", err, ErrUnreadable)
		}
	} else {
		fr, err = rd.nextPcap()
	}
	if rd.win != nil && rd.win.scratch {
		rd.copied = true
	}
	return fr, err
}

func (rd *Reader) nextPcap() (Frame, error) {
	if w := rd.win; w != nil && !rd.pcap.modified {
		// The common case, without a call through the source: the whole record is at hand and not cut
		// by the snapshot length.
		if b := w.cur[w.pos:]; len(b) >= 16 {
			var sec, frac, caplen uint32
			if rd.big {
				sec, frac, caplen = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
			} else {
				sec, frac, caplen = binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			}
			if n := int(caplen); n <= rd.pcap.snaplen && n <= maxSnaplen && n <= len(b)-16 {
				start := rd.off
				w.pos += 16 + n
				rd.off += int64(16 + n)
				usec := frac
				if rd.pcap.nano {
					usec = frac / 1000
				}
				return Frame{Link: rd.pcap.link, Sec: uint64(sec), Usec: usec, Data: b[16 : 16+n : 16+n], Offset: start}, nil
			}
		}
	}
	n := 16
	if rd.pcap.modified {
		n = 24
	}
	start := rd.off
	hdr, err := rd.r.Peek(n)
	if err != nil {
		if err == io.EOF && len(hdr) == 0 {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("record header at byte %d: %w", start, ErrTruncated)
	}
	sec := uint64(rd.order.Uint32(hdr[0:4]))
	frac := rd.order.Uint32(hdr[4:8])
	caplen := int(rd.order.Uint32(hdr[8:12]))
	_, _ = rd.r.Discard(n)
	rd.off += int64(n)
	if caplen > maxSnaplen || caplen < 0 {
		return Frame{}, fmt.Errorf("record at byte %d: captured length %d is larger than %d: %w", start, caplen, maxSnaplen, ErrTruncated)
	}
	keep := caplen
	if keep > rd.pcap.snaplen {
		keep = rd.pcap.snaplen
	}
	data, err := rd.read(keep)
	if err != nil {
		return Frame{}, fmt.Errorf("record at byte %d: %w", start, ErrTruncated)
	}
	if skip := caplen - keep; skip > 0 {
		// data may point into the buffered reader, and discarding past its buffer refills the buffer over
		// it: copy it out first (fix: snaplen-cut records came back holding later bytes of the file).
		rd.buf = append(rd.buf[:0], data...)
		data = rd.buf
		rd.copied = true
		if _, err := rd.r.Discard(skip); err != nil {
			return Frame{}, fmt.Errorf("record at byte %d: %w", start, ErrTruncated)
		}
		rd.off += int64(skip)
	}
	usec := frac
	if rd.pcap.nano {
		usec = frac / 1000
	}
	return Frame{Link: rd.pcap.link, Sec: sec, Usec: usec, Data: data, Offset: start}, nil
}

// read returns the next n bytes, valid until the next read. Records that fit the buffered reader are
// returned in place, without a copy.
func (rd *Reader) read(n int) ([]byte, error) {
	if n <= rd.r.Size() {
		b, err := rd.r.Peek(n)
		if err != nil {
			return nil, err
		}
		if _, err := rd.r.Discard(n); err != nil {
			return nil, err
		}
		rd.off += int64(n)
		return b, nil
	}
	if cap(rd.buf) < n {
		rd.buf = make([]byte, n)
	}
	rd.copied = true
	b := rd.buf[:n]
	for got := 0; got < n; {
		chunk := min(n-got, rd.r.Size())
		if err := rd.readFull(b[got : got+chunk]); err != nil {
			return nil, err
		}
		got += chunk
	}
	rd.off += int64(n)
	return b, nil
}

func (rd *Reader) nextNG() (Frame, error) {
	for {
		start := rd.off
		if err := rd.readFull(rd.hdr[:8]); err != nil {
			if err == io.EOF {
				if rd.first == nil {
					return Frame{}, fmt.Errorf("no interface description block: %w", ErrUnreadable)
				}
				return Frame{}, io.EOF
			}
			return Frame{}, fmt.Errorf("pcapng block at byte %d: %w", start, ErrTruncated)
		}
		rd.off += 8
		typ := binary.BigEndian.Uint32(rd.hdr[0:4])
		if typ == 0x0a0d0d0a {
			// Section header: the byte-order magic follows the length.
			var bom [4]byte
			if err := rd.readFull(bom[:]); err != nil {
				return Frame{}, fmt.Errorf("pcapng section header at byte %d: %w", start, ErrTruncated)
			}
			rd.off += 4
			switch binary.LittleEndian.Uint32(bom[:]) {
			case 0x1A2B3C4D:
				rd.order = binary.LittleEndian
			case 0x4D3C2B1A:
				rd.order = binary.BigEndian
			default:
				return Frame{}, fmt.Errorf("pcapng section header at byte %d: bad byte-order magic: %w", start, ErrDamaged)
			}
			firstSection := rd.firstOrder == nil
			if firstSection {
				rd.firstOrder = rd.order
			} else if rd.order != rd.firstOrder {
				if !rd.all {
					return Frame{}, fmt.Errorf("pcapng section header at byte %d: %w", start, ErrMixed)
				}
				rd.mixed = true
			}
			blen := int(rd.order.Uint32(rd.hdr[4:8]))
			if blen < 28 || blen%4 != 0 || blen > maxBlock {
				return Frame{}, fmt.Errorf("pcapng section header at byte %d: bad block length %d: %w", start, blen, ErrDamaged)
			}
			rest, err := rd.read(blen - 12)
			if err != nil {
				return Frame{}, fmt.Errorf("pcapng section header at byte %d: %w", start, ErrTruncated)
			}
			if !firstSection && int(rd.order.Uint32(rest[len(rest)-4:])) != blen { // libpcap's open does not check it
				return Frame{}, fmt.Errorf("pcapng section header at byte %d: block lengths differ: %w", start, ErrDamaged)
			}
			// libpcap opens version 1.0 and 1.2 files, and reads on through sections of major version 1.
			major, minor := rd.order.Uint16(rest[0:2]), rd.order.Uint16(rest[2:4])
			if firstSection && (major != 1 || minor != 0 && minor != 2) {
				return Frame{}, fmt.Errorf("pcapng version %d.%d: %w", major, minor, ErrUnreadable)
			}
			if major != 1 {
				return Frame{}, fmt.Errorf("pcapng section header at byte %d: version %d.%d: %w", start, major, minor, ErrMixed)
			}
			rd.ifaces = rd.ifaces[:0]
			continue
		}
		if rd.order == nil {
			return Frame{}, fmt.Errorf("pcapng: block at byte %d before the section header: %w", start, ErrDamaged)
		}
		typ = rd.order.Uint32(rd.hdr[0:4])
		blen := int(rd.order.Uint32(rd.hdr[4:8]))
		if blen < 12 || blen%4 != 0 || blen > maxBlock {
			return Frame{}, fmt.Errorf("pcapng block at byte %d: bad block length %d: %w", start, blen, ErrDamaged)
		}
		body, err := rd.read(blen - 8)
		if err != nil {
			return Frame{}, fmt.Errorf("pcapng block at byte %d: %w", start, ErrTruncated)
		}
		if int(rd.order.Uint32(body[len(body)-4:])) != blen {
			return Frame{}, fmt.Errorf("pcapng block at byte %d: block lengths differ: %w", start, ErrDamaged)
		}
		body = body[:len(body)-4] // trailing block length
		switch typ {
		case 1: // interface description
			if err := rd.addIface(body); err != nil {
				return Frame{}, fmt.Errorf("pcapng interface block at byte %d: %w: %w", start, err, ErrDamaged)
			}
			in := &rd.ifaces[len(rd.ifaces)-1]
			if rd.first == nil {
				first := *in
				rd.first = &first
			} else if in.link != rd.first.link || in.snaplen != rd.first.snaplen {
				if rd.all {
					rd.mixed = true
					break
				}
				return Frame{}, fmt.Errorf("pcapng interface block at byte %d: link type %d, snapshot length %d after the first interface's %d, %d: %w",
					start, in.link, in.snaplen, rd.first.link, rd.first.snaplen, ErrMixed)
			}
		case 6, 2: // enhanced packet, obsolete packet
			if len(body) < 20 {
				return Frame{}, fmt.Errorf("pcapng packet block at byte %d: too short: %w", start, ErrDamaged)
			}
			var id int
			if typ == 6 {
				id = int(rd.order.Uint32(body[0:4]))
			} else {
				id = int(rd.order.Uint16(body[0:2]))
			}
			ts := uint64(rd.order.Uint32(body[4:8]))<<32 | uint64(rd.order.Uint32(body[8:12]))
			caplen := int(rd.order.Uint32(body[12:16]))
			if rd.first == nil {
				return Frame{}, fmt.Errorf("pcapng packet block at byte %d before any interface description: %w", start, ErrUnreadable)
			}
			if id >= len(rd.ifaces) {
				return Frame{}, fmt.Errorf("pcapng packet block at byte %d: unknown interface %d: %w", start, id, ErrDamaged)
			}
			if caplen > len(body)-20 || caplen < 0 {
				return Frame{}, fmt.Errorf("pcapng packet block at byte %d: captured length %d exceeds the block: %w", start, caplen, ErrDamaged)
			}
			if limit := rd.snaplen(&rd.ifaces[id]); caplen > limit { // libpcap 1.10: a read error, not a cut
				return Frame{}, fmt.Errorf("pcapng packet block at byte %d: captured length %d is larger than the snapshot length %d: %w",
					start, caplen, limit, ErrDamaged)
			}
			return rd.frame(&rd.ifaces[id], ts, body[20:20+caplen], start), nil
		case 3: // simple packet
			if rd.first == nil {
				return Frame{}, fmt.Errorf("pcapng packet block at byte %d before any interface description: %w", start, ErrUnreadable)
			}
			if len(rd.ifaces) == 0 || len(body) < 4 {
				return Frame{}, fmt.Errorf("pcapng simple packet block at byte %d: no interface: %w", start, ErrDamaged)
			}
			in := &rd.ifaces[0]
			caplen := min(int(rd.order.Uint32(body[0:4])), rd.snaplen(in)) // the original length, cut
			data := body[4:]
			if caplen > len(data) {
				return Frame{}, fmt.Errorf("pcapng simple packet block at byte %d: shorter than its packet: %w", start, ErrDamaged)
			}
			data = data[:caplen]
			f := rd.frame(in, 0, data, start)
			return f, nil
		default:
			// Name resolution, statistics, custom blocks…: skipped.
		}
	}
}

// ReadPastMixed reports whether the reader, with Options.AllInterfaces, read on past a point where
// libpcap stops (ErrMixed). Call it after Next returned an error (io.EOF at the end).
func (rd *Reader) ReadPastMixed() bool { return rd.mixed }

// snaplen is the snapshot length a frame of interface in is checked against: the file's first
// interface's, as libpcap does (every interface has it unless Options.AllInterfaces), else its own.
func (rd *Reader) snaplen(in *iface) int {
	if rd.all {
		return in.snaplen
	}
	return rd.first.snaplen
}

func (rd *Reader) addIface(b []byte) error {
	if len(b) < 8 {
		return errors.New("too short")
	}
	in := iface{
		link:    flow.LinkType(uint32(rd.order.Uint16(b[0:2]))),
		snaplen: int(rd.order.Uint32(b[4:8])),
		units:   1_000_000,
	}
	if in.snaplen == 0 || in.snaplen > maxSnaplen {
		in.snaplen = maxSnaplen
	}
	// The options as libpcap reads them: every option whole, if_tsresol and if_tsoffset at most once
	// and of their sizes; anything else makes the block unreadable.
	opts := b[8:]
	sawRes, sawOff := false, false
options:
	for len(opts) != 0 {
		if len(opts) < 4 {
			return errors.New("option header cut short")
		}
		code := rd.order.Uint16(opts[0:2])
		l := int(rd.order.Uint16(opts[2:4]))
		opts = opts[4:]
		pad := (l + 3) &^ 3
		if pad > len(opts) {
			return fmt.Errorf("option %d cut short", code)
		}
		v := opts[:l]
		opts = opts[pad:]
		switch code {
		case 0: // opt_endofopt
			if l != 0 {
				return fmt.Errorf("opt_endofopt of length %d", l)
			}
			break options
		case 9: // if_tsresol
			if l != 1 || sawRes {
				return errors.New("if_tsresol not of length 1, or twice")
			}
			sawRes = true
			r := v[0]
			if r&0x80 == 0 {
				if r > 19 {
					return fmt.Errorf("time resolution 10^-%d is out of range", r)
				}
				in.units = 1
				for i := 0; i < int(r); i++ {
					in.units *= 10
				}
			} else {
				if r&0x7F > 63 {
					return fmt.Errorf("time resolution 2^-%d is out of range", r&0x7F)
				}
				in.units = 1 << (r & 0x7F)
			}
		case 14: // if_tsoffset
			if l != 8 || sawOff {
				return errors.New("if_tsoffset not of length 8, or twice")
			}
			sawOff = true
			in.offset = int64(rd.order.Uint64(v[0:8]))
		}
	}
	rd.ifaces = append(rd.ifaces, in)
	return nil
}

func (rd *Reader) frame(in *iface, ts uint64, data []byte, off int64) Frame {
	if len(data) > in.snaplen {
		data = data[:in.snaplen]
	}
	sec := ts / in.units
	frac := ts % in.units
	var usec uint64
	switch {
	case in.units == 1_000_000:
		usec = frac
	case in.units > 1_000_000 && in.units%1_000_000 == 0:
		usec = frac / (in.units / 1_000_000)
	default:
		hi, lo := bits.Mul64(frac, 1_000_000)
		usec, _ = bits.Div64(hi, lo, in.units)
	}
	s := int64(sec) + in.offset
	if s < 0 {
		s = 0
	}
	return Frame{Link: in.link, Sec: uint64(s), Usec: uint32(usec), Data: data, Offset: off}
}
