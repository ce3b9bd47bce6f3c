package flow

import (
	"bytes"
	"errors"
	"net/netip"
)

// This file is the reference's own DNS response walker (section 4, R-DNS-2 … R-DNS-7), peculiarities
// included: the corpus depends on them, so it is not replaced by a DNS library.

// Name decoding is bounded (R-DNS-6: the reference has no loop protection and recurses until Python's
// limit of about a thousand frames): each label costs one step, each compression pointer eight, and a
// name that needs more than maxNameDepth steps — a pointer loop (64 pointers), or more labels than a
// real name has (at most 127) — is abandoned with its record.
const (
	maxNameDepth = 512
	pointerSteps = 8
)

var errNameDepth = errors.New("dns: name too deep (a compression pointer loop?)")

// dnsWalker parses DNS responses into an AnswerTable. Its scratch space is reused across frames.
type dnsWalker struct {
	nextZero []int32
}

// walk parses the DNS message at offset u of frame f, received at time at (R-DNS-2 onwards).
func (w *dnsWalker) walk(table *AnswerTable, f []byte, u int, at float64) {
	if u+2 >= len(f) || u < 0 {
		return // F[U+2] read failure
	}
	if f[u+2]^0x80 >= 8 { // QR = 1 and opcode 0 (R-DNS-2)
		return
	}
	m := f[u:]
	// R-DNS-3: the question.
	qd := int(u16(f, u+4))
	p := u + 13
	z, k := 0, 0
	var hasA, hasAAAA bool
	q := ""
	if qd > 4 {
		w.indexZeros(f)
	}
	for k < qd {
		s := p + 4*k + z
		z = w.findZero(f, s, qd > 4)
		switch u16(f, p+z+1) { // qt = u16(F[P+z+1 .. P+z+3)); PTR questions (12) only feed PTR entries
		case 1:
			hasA = true
		case 28:
			hasAAAA = true
		}
		if k == 0 {
			lab := clip(f, p, p+z)
			if ascii(lab) {
				q = clean(lab) + "."
				table.Register(q)
			}
		}
		k++
		if z == -1 && p+4*k-1 >= len(f) {
			// Every later iteration finds no zero and reads the same type bytes: nothing changes.
			k = qd
		}
	}
	a := p + 4*k + z + 1

	// R-DNS-5: the resource-record walk.
	var cn map[string]struct{}
	n, prev, first := 2, 0, true
	for len(f) > a+n {
		if !first && prev == 0 {
			n += 12
		}
		first = false
		tt := a + n
		l := tt + 8
		r := l + 2
		dl := int(u16(f, l))
		tc := clip(f, tt, tt+4)
		w.record(table, m, f, tt, l, r, dl, tc, q, hasA || hasAAAA, at, &cn)
		prev = dl
		n += dl + 12
	}
}

var (
	tcA     = []byte{0, 1, 0, 1}
	tcAAAA  = []byte{0, 0x1C, 0, 1}
	tcCNAME = []byte{0, 5, 0, 1}
	tcNS    = []byte{0, 2, 0, 1}
)

// record processes one resource record (R-DNS-5 steps 1-5). Errors abandon the record only.
func (w *dnsWalker) record(table *AnswerTable, m, f []byte, tt, l, r, dl int, tc []byte, q string, hasAddrQ bool, at float64, cn *map[string]struct{}) {
	isCNAME := bytes.Equal(tc, tcCNAME)
	var ip string
	var data string
	if (dl == 4 || dl == 16) && (bytes.Equal(tc, tcA) || bytes.Equal(tc, tcAAAA)) {
		raw := clip(f, r, r+dl)
		if len(raw) != dl {
			return
		}
		if dl == 4 {
			ip = AddrText(netip.AddrFrom4([4]byte(raw)))
		} else {
			ip = AddrText(netip.AddrFrom16([16]byte(raw)))
		}
	} else {
		var err error
		data, err = name(m, clip(f, l, len(f)), dl != 0, 0)
		if err != nil {
			return
		}
	}
	owner := data
	if owner == "" {
		var err error
		owner, err = pointer(m, u16(clip(f, tt-2, tt), 0), 0)
		if err != nil {
			return
		}
	}
	if owner != "" {
		owner += "."
		if isCNAME {
			if *cn == nil {
				*cn = make(map[string]struct{})
			}
			(*cn)[owner] = struct{}{}
		}
		if ip != "" {
			if _, ok := (*cn)[owner]; ok {
				owner = q
			}
			table.Add(owner, at, ip)
		}
	}
	if hasAddrQ && bytes.Equal(tc, tcNS) && owner != "" {
		ns, err := name(m, clip(f, r, r+dl), false, 0)
		if err == nil && ns != "" {
			table.Reset(ns + ".")
		}
	}
	// PTR answers (R-DNS-5 step 5, second branch) hold names, never addresses, so they can never name a
	// flow (R-NAME-1); they are not stored.
}

// name decodes a domain name at the start of b (R-DNS-6).
func name(m, b []byte, skip2 bool, depth int) (string, error) {
	if depth > maxNameDepth {
		return "", errNameDepth
	}
	if skip2 {
		if len(b) <= 2 {
			return "", nil
		}
		b = b[2:]
	}
	if len(b) == 0 {
		return "", nil
	}
	ln := int(b[0])
	if ln == 0 {
		return "", nil
	}
	if ln >= 192 {
		r, err := pointer(m, u16(b, 0), depth)
		if err != nil {
			return "", err
		}
		if r != "" {
			return r, nil
		}
	}
	lab := clip(b, 1, 1+ln)
	if !ascii(lab) {
		return "", nil
	}
	if i := bytes.IndexByte(lab, 0); i > 0 {
		c := clean(lab)
		return c[1:], nil
	}
	rest, err := name(m, clip(b, ln+1, len(b)), false, depth+1)
	if err != nil {
		return "", err
	}
	if rest != "" {
		return string(lab) + "." + rest, nil
	}
	return string(lab), nil
}

// pointer follows a compression pointer into the message m (R-DNS-6).
func pointer(m []byte, v uint16, depth int) (string, error) {
	if v&0xC000 != 0xC000 {
		return "", nil
	}
	return name(m, clip(m, int(v&0x3FFF), len(m)), false, depth+pointerSteps)
}

// clean replaces every character outside letters, digits, '-' and '_' by '.' (R-DNS-4).
func clean(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			out[i] = c
		default:
			out[i] = '.'
		}
	}
	return string(out)
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// clip returns f[i:j] clipped to the bytes that exist (R-CONV-1).
func clip(f []byte, i, j int) []byte {
	if i < 0 {
		i = 0
	}
	if j > len(f) {
		j = len(f)
	}
	if j <= i || i >= len(f) {
		return nil
	}
	return f[i:j]
}

// indexZeros fills w.nextZero[i] with the index of the first zero byte at or after i (-1 if none).
func (w *dnsWalker) indexZeros(f []byte) {
	if cap(w.nextZero) < len(f)+1 {
		w.nextZero = make([]int32, len(f)+1)
	}
	nz := w.nextZero[:len(f)+1]
	nz[len(f)] = -1
	for i := len(f) - 1; i >= 0; i-- {
		if f[i] == 0 {
			nz[i] = int32(i)
		} else {
			nz[i] = nz[i+1]
		}
	}
	w.nextZero = nz
}

// findZero returns the index of the first zero byte of f[s:], counted from s, or -1.
func (w *dnsWalker) findZero(f []byte, s int, indexed bool) int {
	if s < 0 || s >= len(f) {
		return -1
	}
	if indexed {
		if z := w.nextZero[s]; z >= 0 {
			return int(z) - s
		}
		return -1
	}
	return bytes.IndexByte(f[s:], 0)
}
