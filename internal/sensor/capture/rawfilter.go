package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// compileRawIPFilter compiles a capture filter for packets that start at the IP header (the AF_PACKET
// source's layout) into classic BPF that returns snaplen to accept and 0 to reject, without libpcap. It
// is what the cgo-free sensor (the container image) uses; the cgo build uses libpcap's compiler.
//
// It accepts a subset of pcap-filter(7), with libpcap's meaning and precedence ("not" binds tightest;
// "and" and "or" have equal precedence and group left to right):
//
//	host ADDR | src host ADDR | dst host ADDR      (IPv4 or IPv6 address)
//	[tcp|udp] [src|dst] port N                     (no protocol: tcp, udp or sctp, as libpcap)
//	tcp | udp | icmp | ip | ip6
//	not EXPR | ! EXPR | EXPR and EXPR | EXPR && EXPR | EXPR or EXPR | EXPR || EXPR | ( EXPR )
//
// Anything else is refused with an error naming the word. Unlike libpcap it does not look through IPv6
// extension headers (a TCP segment behind an IPv6 fragment header does not match "tcp"), and IPv4
// fragments after the first never match a port, as in libpcap.
func compileRawIPFilter(snaplen int, filter string) ([]bpf.RawInstruction, error) {
	if len(filter) > maxFilterLen {
		return nil, fmt.Errorf("filter is %d bytes, more than %d", len(filter), maxFilterLen)
	}
	p := &filterParser{toks: tokenize(filter)}
	if len(p.toks) == 0 {
		return bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: uint32(snaplen)}})
	}
	root, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("filter: unexpected %q", p.toks[p.pos])
	}
	g := &filterGen{}
	accept, reject := g.label(), g.label()
	g.gen(root, accept, reject)
	g.place(accept)
	g.emit(bpf.RetConstant{Val: uint32(snaplen)})
	g.place(reject)
	g.emit(bpf.RetConstant{Val: 0})
	prog, err := g.resolve()
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(prog)
}

const (
	maxFilterLen   = 4096 // bytes of filter text
	maxFilterNodes = 512  // primitives and operators
	maxFilterInsns = 4096 // BPF_MAXINSNS
)

func tokenize(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			out = append(out, s[i:i+1])
			i++
		case c == '!':
			out = append(out, "not")
			i++
		case strings.HasPrefix(s[i:], "&&"):
			out = append(out, "and")
			i += 2
		case strings.HasPrefix(s[i:], "||"):
			out = append(out, "or")
			i += 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()!&|", rune(s[j])) {
				j++
			}
			if j == i { // a lone & or |
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}

// A filter expression: an operator over sub-expressions, or a test of one loaded value.
type fnode struct {
	op   string // "and", "or", "not", "test"
	kids []*fnode
	test ftest
}

// ftest loads a value from the packet and compares it: val&mask == k (jset: val&k != 0).
type ftest struct {
	size int    // 1, 2 or 4 bytes
	off  uint32 // offset from the IP header, or from the transport header when ind
	ind  bool   // relative to the IPv4 transport header (X = 4*IHL)
	mask uint32 // 0: none
	jset bool
	k    uint32
}

func fAnd(kids ...*fnode) *fnode { return &fnode{op: "and", kids: kids} }
func fOr(kids ...*fnode) *fnode  { return &fnode{op: "or", kids: kids} }
func fNot(kid *fnode) *fnode     { return &fnode{op: "not", kids: []*fnode{kid}} }
func fTest(t ftest) *fnode       { return &fnode{op: "test", test: t} }

var (
	isIPv4     = fTest(ftest{size: 1, off: 0, mask: 0xf0, k: 0x40})
	isIPv6     = fTest(ftest{size: 1, off: 0, mask: 0xf0, k: 0x60})
	v4Fragment = fTest(ftest{size: 2, off: 6, jset: true, k: 0x1fff}) // a fragment after the first
)

func proto(p uint32) *fnode {
	return fOr(fAnd(isIPv4, fTest(ftest{size: 1, off: 9, k: p})), fAnd(isIPv6, fTest(ftest{size: 1, off: 6, k: p})))
}

func hostTest(a netip.Addr, src, dst bool) *fnode {
	var alts []*fnode
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		k := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if src {
			alts = append(alts, fTest(ftest{size: 4, off: 12, k: k}))
		}
		if dst {
			alts = append(alts, fTest(ftest{size: 4, off: 16, k: k}))
		}
		return fAnd(isIPv4, fOr(alts...))
	}
	b := a.As16()
	addrAt := func(off uint32) *fnode {
		var words []*fnode
		for i := uint32(0); i < 4; i++ {
			k := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
			words = append(words, fTest(ftest{size: 4, off: off + 4*i, k: k}))
		}
		return fAnd(words...)
	}
	if src {
		alts = append(alts, addrAt(8))
	}
	if dst {
		alts = append(alts, addrAt(24))
	}
	return fAnd(isIPv6, fOr(alts...))
}

func portTest(protos []uint32, port uint32, src, dst bool) *fnode {
	var v4, v6 []*fnode
	for _, p := range protos {
		v4 = append(v4, fTest(ftest{size: 1, off: 9, k: p}))
		v6 = append(v6, fTest(ftest{size: 1, off: 6, k: p}))
	}
	var p4, p6 []*fnode
	if src {
		p4 = append(p4, fTest(ftest{size: 2, off: 0, ind: true, k: port}))
		p6 = append(p6, fTest(ftest{size: 2, off: 40, k: port}))
	}
	if dst {
		p4 = append(p4, fTest(ftest{size: 2, off: 2, ind: true, k: port}))
		p6 = append(p6, fTest(ftest{size: 2, off: 42, k: port}))
	}
	return fOr(fAnd(isIPv4, fOr(v4...), fNot(v4Fragment), fOr(p4...)), fAnd(isIPv6, fOr(v6...), fOr(p6...)))
}

type filterParser struct {
	toks  []string
	pos   int
	nodes int
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

// expr: unary { (and|or) unary }, left to right with equal precedence, as libpcap.
func (p *filterParser) expr() (*fnode, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for op := p.peek(); op == "and" || op == "or"; op = p.peek() {
		p.pos++
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = &fnode{op: op, kids: []*fnode{left, right}}
	}
	return left, nil
}

func (p *filterParser) unary() (*fnode, error) {
	if p.nodes++; p.nodes > maxFilterNodes {
		return nil, fmt.Errorf("filter has more than %d terms", maxFilterNodes)
	}
	switch t := p.next(); t {
	case "not":
		kid, err := p.unary()
		if err != nil {
			return nil, err
		}
		return fNot(kid), nil
	case "(":
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("filter: missing ')'")
		}
		return e, nil
	case "":
		return nil, fmt.Errorf("filter: unexpected end")
	default:
		p.pos--
		return p.primitive()
	}
}

func (p *filterParser) primitive() (*fnode, error) {
	var protos []uint32
	src, dst := true, true
	t := p.next()
	switch t {
	case "tcp", "udp":
		n := map[string]uint32{"tcp": 6, "udp": 17}[t]
		if q := p.peek(); q != "port" && q != "src" && q != "dst" {
			return proto(n), nil
		}
		protos = []uint32{n}
		t = p.next()
	case "icmp":
		return fAnd(isIPv4, fTest(ftest{size: 1, off: 9, k: 1})), nil
	case "ip":
		return isIPv4, nil
	case "ip6":
		return isIPv6, nil
	}
	if t == "src" || t == "dst" {
		src, dst = t == "src", t == "dst"
		t = p.next()
	}
	switch t {
	case "host":
		if protos != nil {
			return nil, fmt.Errorf("filter: %q before host is not supported without libpcap", "tcp/udp")
		}
		w := p.next()
		a, err := netip.ParseAddr(w)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("filter: host %q is not an IP address (names are not resolved without libpcap)", w)
		}
		return hostTest(a, src, dst), nil
	case "port":
		w := p.next()
		n, err := strconv.ParseUint(w, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("filter: port %q is not a number 0-65535", w)
		}
		if protos == nil {
			protos = []uint32{6, 17, 132}
		}
		return portTest(protos, uint32(n), src, dst), nil
	}
	return nil, fmt.Errorf("filter: %q is not supported by the sensor built without libpcap (see docs/install.md)", t)
}

// filterGen emits code for a tree with symbolic jump targets, then resolves them.
type filterGen struct {
	insns  []ginsn
	labels []int // label → instruction index
}

// ginsn is an instruction; for a conditional jump jt and jf are labels.
type ginsn struct {
	in     bpf.Instruction
	cond   bool // a JumpIf whose targets are labels
	jt, jf int
}

func (g *filterGen) label() int              { g.labels = append(g.labels, -1); return len(g.labels) - 1 }
func (g *filterGen) place(l int)             { g.labels[l] = len(g.insns) }
func (g *filterGen) emit(in bpf.Instruction) { g.insns = append(g.insns, ginsn{in: in}) }

// gen emits code that jumps to t when n holds and to f when it does not.
func (g *filterGen) gen(n *fnode, t, f int) {
	switch n.op {
	case "not":
		g.gen(n.kids[0], f, t)
	case "and", "or":
		for i, k := range n.kids {
			if i == len(n.kids)-1 {
				g.gen(k, t, f)
				break
			}
			next := g.label()
			if n.op == "and" {
				g.gen(k, next, f)
			} else {
				g.gen(k, t, next)
			}
			g.place(next)
		}
	case "test":
		x := n.test
		if x.ind {
			g.emit(bpf.LoadMemShift{Off: 0})
			g.emit(bpf.LoadIndirect{Off: x.off, Size: x.size})
		} else {
			g.emit(bpf.LoadAbsolute{Off: x.off, Size: x.size})
		}
		if x.mask != 0 {
			g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: x.mask})
		}
		cond := bpf.JumpEqual
		if x.jset {
			cond = bpf.JumpBitsSet
		}
		g.insns = append(g.insns, ginsn{in: bpf.JumpIf{Cond: cond, Val: x.k}, cond: true, jt: t, jf: f})
	}
}

func (g *filterGen) resolve() ([]bpf.Instruction, error) {
	if len(g.insns) > maxFilterInsns {
		return nil, fmt.Errorf("filter compiles to %d instructions, more than %d", len(g.insns), maxFilterInsns)
	}
	out := make([]bpf.Instruction, len(g.insns))
	for i, in := range g.insns {
		if !in.cond {
			out[i] = in.in
			continue
		}
		jt, jf := g.labels[in.jt]-i-1, g.labels[in.jf]-i-1
		if jt < 0 || jf < 0 || jt > 255 || jf > 255 {
			return nil, fmt.Errorf("filter is too long for the sensor built without libpcap (a jump of more than 255 instructions)")
		}
		j := in.in.(bpf.JumpIf)
		j.SkipTrue, j.SkipFalse = uint8(jt), uint8(jf)
		out[i] = j
	}
	return out, nil
}
