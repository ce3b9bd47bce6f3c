package flow

// This file decodes one frame exactly as R-DEC-0 … R-DEC-10 describe: the IP header is assumed at
// offset 14, lengths come from header fields, and every range read is clipped (R-CONV-1).

// maxTunnelDepth bounds nested GRE/IPIP decapsulation (R-DEC-8); every level shrinks the frame, so this
// only guards against pathological inputs.
const maxTunnelDepth = 16

// u16 reads a big-endian value from the clipped range F[i..i+2) (R-CONV-1): the bytes present, 0 if none.
func u16(f []byte, i int) uint16 {
	switch {
	case i < 0 || i >= len(f):
		return 0
	case i+1 >= len(f):
		return uint16(f[i])
	default:
		return uint16(f[i])<<8 | uint16(f[i+1])
	}
}

// decoded is what one frame yields.
type decoded struct {
	addrs     bool // the addresses were read
	v6        bool
	src, dst  [16]byte // IPv4 in the first 4 bytes
	proto     uint8    // P, the innermost protocol byte
	label     protoCode
	portA     uint16
	portB     uint16
	payload   int64
	handled   bool // R-DEC-10
	truncated bool // a frame the reference aborts on (R-DEC-11): TCP data offset byte or IPv6 addresses missing
	dataOff   int  // U: start of the TCP/UDP payload in frame, or -1
	frame     []byte
}

// decoder holds the scratch space for decapsulation so decoding does not allocate.
type decoder struct {
	scratch []byte
}

// decode applies R-DEC-1 … R-DEC-9 to f (tunnels included, R-DEC-8) and writes the result to r (by
// pointer: it is written once a frame). The result's frame is the (possibly rebuilt) innermost frame.
func (d *decoder) decode(f []byte, tunnels bool, r *decoded) {
	for depth := 0; ; depth++ {
		*r = decoded{dataOff: -1, frame: f}
		if len(f) <= 14 {
			return
		}
		var h, tl int
		switch f[14] >> 4 {
		case 4: // R-DEC-2
			if len(f) < 34 {
				return
			}
			h = int(f[14]&0x0F) * 4
			tl = int(u16(f, 16))
			r.proto = f[23]
			copy(r.src[:4], f[26:30])
			copy(r.dst[:4], f[30:34])
		case 6: // R-DEC-3
			if len(f) < 54 {
				r.truncated = len(f) > 34 // R-DEC-11 (shorter frames are ignored before, R-DEC-0)
				return
			}
			r.v6 = true
			h = 40
			tl = int(u16(f, 18)) + 40
			r.proto = f[20]
			copy(r.src[:], f[22:38])
			copy(r.dst[:], f[38:54])
		default:
			return
		}
		r.addrs = true
		t := 14 + h
		if tunnels && depth < maxTunnelDepth && (r.proto == 47 || r.proto == 4) { // R-DEC-8
			f = d.decapsulate(f, t, r.proto == 47)
			continue
		}
		r.portA = u16(f, t)
		r.portB = u16(f, t+2)
		switch {
		case r.proto == 6: // R-DEC-5
			r.label = codeTCP
			if t+12 >= len(f) {
				r.truncated = true
				return
			}
			hl := int(f[t+12]>>4) * 4
			if tl != 0 {
				r.payload = int64(tl - h - hl)
			} else {
				r.payload = int64(len(f) - 14 - h - hl)
			}
			r.dataOff = t + hl
			r.handled = true
		case r.proto == 17: // R-DEC-6
			r.label = codeUDP
			r.payload = int64(u16(f, t+4)) - 8
			r.dataOff = t + 8
			r.handled = true
		case !r.v6 && r.proto == 1, r.v6 && r.proto == 58: // R-DEC-7
			r.label = codeICMP
			r.portA, r.portB = 0, 0
			if r.v6 {
				r.payload = int64(len(f) - 14 - h - 4)
			} else {
				r.payload = int64(len(f) - 14 - h - 8)
			}
			r.handled = true
		default: // R-DEC-9
			r.label = codeOther
			r.payload = -1
		}
		return
	}
}

// decapsulate rebuilds the frame after a GRE or IPIP header at offset t (R-DEC-8).
func (d *decoder) decapsulate(f []byte, t int, gre bool) []byte {
	start := t
	if gre {
		start = t + 4
		if u16(f, t+2) == 0x6558 {
			if start > len(f) {
				return nil
			}
			return f[start:]
		}
	}
	var inner []byte
	if start < len(f) {
		inner = f[start:]
	}
	var link [14]byte
	copy(link[:], f[:14])
	n := 14 + len(inner)
	if cap(d.scratch) < n {
		grown := make([]byte, n, n+256)
		copy(grown[14:], inner)
		d.scratch = grown
	} else {
		// f may point into d.scratch; copy handles the overlap and the link header was saved above.
		copy(d.scratch[14:n], inner)
	}
	out := d.scratch[:n]
	copy(out[:14], link[:])
	return out
}

// isCookedV4 reports the Linux-cooked v1 layout test of R-DEC-10.
func isCookedV4(f []byte) bool {
	return len(f) >= 16 && f[0] == 0 && f[4] == 0 && f[5] == 6 && f[14] == 8 && f[15] == 0
}

// decodeFrame applies R-DEC-10 on top of decode: it returns the decoding used for flows (handled or
// not) after the cooked-capture branch.
func (d *decoder) decodeFrame(f []byte, r *decoded) {
	d.decode(f, true, r)
	if r.handled || r.truncated || !isCookedV4(f) {
		return
	}
	d.decode(f[2:], true, r)
	if r.addrs && !r.truncated {
		r.handled = true
	}
}
