// Package netflow reads NetFlow v9 records exported by nfdump as CSV (unidirectional records, one a line)
// and pairs them into flows exactly as the reference converter, bayse-tools 1.0.5, does. The rules are
// section 8 of docs/bayseflow.md (R-NF-1 … R-NF-10); rule ids in comments refer to it.
//
// [Read] returns the flows in creation order (R-NF-9) with the conversion start time S (R-NF-6); the
// driver finishes them with flow.Finalize and names them (NetFlow carries no DNS data, R-NF-10).
//
// Start times are wall-clock times of the machine that ran the converter (R-NF-5); [Options.Location]
// sets that zone. Python's conversion rules for wall times that a daylight-saving change makes ambiguous
// or nonexistent are reproduced (see localToSeconds).
//
// Everything read is bounded: a line may hold at most MaxLine bytes. Memory grows with the number of kept
// records (they must all be seen before any flow can be built, R-NF-7), never quadratically.
package netflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/flowfleet/flowfleet/internal/pytext"
	"io"
	"math"
	"math/big"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// MaxLine bounds one line of the input, in bytes.
const MaxLine = 1 << 20

// Options tunes Read.
type Options struct {
	// Location is the zone in which record start times are read (R-NF-5); nil means time.Local, like the
	// reference, which uses the zone of the machine it runs on. The public corpus needs America/New_York.
	Location *time.Location
}

// role is what the reference calls a field (its HEADER_MAPS keys).
type role int

const (
	roleNone role = iota
	roleStart
	roleEnd
	roleDuration
	roleProto
	roleSourceData
	roleSrc
	roleSrcPkts
	roleSrcBytesFlows
	roleSrcPort
	roleSrcBytes
	roleDestData
	roleDst
	roleDstBytes
	roleDstPort
	roleDstPkts
	roleDirection
	numRoles
)

// headerRoles maps header names to roles (R-NF-3). Only start, duration, protocol, addresses, ports,
// packets and bytes are used; the others are recognised and ignored, like the reference.
var headerRoles = map[string]role{
	"date first seen": roleStart, "date flow start": roleStart, "ts": roleStart,
	"te":       roleEnd,
	"duration": roleDuration, "td": roleDuration,
	"proto": roleProto, "pr": roleProto,
	"src ip addr:port": roleSourceData,
	"sa":               roleSrc,
	"packets":          roleSrcPkts, "ipkt": roleSrcPkts,
	"bytes flows":      roleSrcBytesFlows,
	"sp":               roleSrcPort,
	"ibyt":             roleSrcBytes,
	"dst ip addr:port": roleDestData,
	"da":               roleDst,
	"obyt":             roleDstBytes,
	"dp":               roleDstPort,
	"opkt":             roleDstPkts,
	"dir":              roleDirection,
}

// defaultHeader is used when line 0 does not start with a letter (R-NF-2).
var defaultHeader = []string{"ts", "td", "sa", "da", "sp", "dp", "pr", "flg", "ipkt", "ibyt", "opkt", "obyt", "label"}

// record is one kept NetFlow line, every value as the reference's text (R-NF-4).
type record struct {
	line                   int
	key                    string // current key (changes when the record is flipped)
	rkey                   string // reverse of the original key; the reference never updates it
	t                      float64
	src, srcPort           string
	dst, dstPort           string
	proto                  flow.Protocol
	duration               string // "-" when absent
	srcBytes, dstBytes     string // "-" when absent
	srcPackets, dstPackets string // "0" when absent
}

// flip swaps the two sides of a record (R-NF-7).
func (r *record) flip() {
	r.src, r.dst = r.dst, r.src
	r.srcPort, r.dstPort = r.dstPort, r.srcPort
	r.srcBytes, r.dstBytes = r.dstBytes, r.srcBytes
	r.srcPackets, r.dstPackets = r.dstPackets, r.srcPackets
	r.key = flow.Key(r.src, r.srcPort, r.dst, r.dstPort, r.proto == flow.ProtoICMP)
}

type group struct {
	key  string
	recs []record
}

// reader holds the state of one Read.
type reader struct {
	name     string
	loc      *time.Location
	columns  [numRoles]int // column of each role, -1 when absent
	nfields  int
	groups   []*group
	index    map[string]*group
	sawComma bool
}

// Read parses a NetFlow v9 CSV export (R-NF-1 … R-NF-9). It returns the flows in creation order with
// Start = S (flow.NoStart when no record was kept), each flow's First, Last, counters (header bytes
// already deducted, R-NF-8), Protocol, ports and Identifier ""; flows whose source text is not an IP
// address have DurationUnknown set. relativeStart and duration are left to flow.Finalize.
//
// Input the reference refuses (not text, empty, no comma-separated line) and input on which it aborts
// (a packet count that is not an integer, an address that is not an IP address where the direction check
// needs it, …) are errors naming the file and line. A JSON export is accepted and yields no flows, as in
// the reference (R-NF-1).
func Read(r io.Reader, name string, opts Options) (flow.Sample, error) {
	empty := flow.Sample{Start: flow.NoStart}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	rd := &reader{name: name, loc: loc, index: make(map[string]*group)}
	lr := pytext.NewLineReader(r, MaxLine)
	num := 0 // Python's enumerate index: lines numbered from 0 (R-NF-2)
	blank := true
	for ; ; num++ {
		line, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return empty, rd.errorf(lr.Line(), "%v", err)
		}
		if err := pytext.CheckText(line); err != nil {
			return empty, rd.errorf(lr.Line(), "not a CSV text file: %v", err)
		}
		if blank && looksJSON(line) {
			if err := checkJSON(line, lr); err != nil {
				return empty, rd.errorf(lr.Line(), "neither CSV nor JSON: %v", err)
			}
			return empty, nil // R-NF-1: JSON NetFlow is accepted but not supported
		}
		if len(bytes.TrimSpace(line)) > 0 {
			blank = false
		}
		if bytes.IndexByte(line, ',') >= 0 {
			rd.sawComma = true
		}
		rd.line(num, lr.Line(), string(line))
	}
	if num == 0 {
		return empty, fmt.Errorf("%s: empty file (not CSV text)", name)
	}
	if !rd.sawComma {
		return empty, fmt.Errorf("%s: no comma-separated line (not CSV text)", name)
	}
	s, err := rd.flows()
	if err != nil {
		return empty, err
	}
	return s, nil
}

func (rd *reader) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", rd.name, line, fmt.Sprintf(format, args...))
}

// looksJSON reports whether the first line opens a JSON object or array.
func looksJSON(line []byte) bool {
	t := bytes.TrimLeft(line, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// checkJSON validates the rest of the input as a sequence of JSON values, reading it line by line
// through lr so that the line bound still holds.
func checkJSON(first []byte, lr *pytext.LineReader) error {
	src := &linesSource{lr: lr, pending: append(append([]byte(nil), first...), '\n')}
	dec := json.NewDecoder(src)
	values, depth := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if depth != 0 {
				return io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			if src.err != nil {
				return src.err
			}
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '[' || d == '{' {
				values++
				depth++
			} else {
				depth--
			}
		}
	}
	if values == 0 {
		return errors.New("no JSON object or array")
	}
	return nil
}

// linesSource presents the remaining lines of a lineReader as a byte stream.
type linesSource struct {
	lr      *pytext.LineReader
	pending []byte
	err     error
}

func (s *linesSource) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		line, err := s.lr.Next()
		if err == io.EOF {
			return 0, io.EOF
		}
		if err == nil {
			err = pytext.CheckText(line)
		}
		if err != nil {
			s.err = err
			return 0, err
		}
		s.pending = append(append(s.pending[:0], line...), '\n')
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// isLetter is the reference's test for a header or comment line: an ASCII letter first (R-NF-2).
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// items lower-cases and strips a line, splits it on commas and drops empty items (R-NF-2).
func items(line string) []string {
	parts := strings.Split(pytext.Strip(strings.ToLower(line)), ",")
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// setHeader maps column names to roles; the rightmost column of a role wins (R-NF-3).
func (rd *reader) setHeader(names []string) {
	rd.nfields = len(names)
	for i := range rd.columns {
		rd.columns[i] = -1
	}
	for i, n := range names {
		if ro, ok := headerRoles[pytext.Strip(n)]; ok {
			rd.columns[ro] = i
		}
	}
}

// line handles line number num (0-based, R-NF-2); at is its 1-based number for messages.
func (rd *reader) line(num, at int, line string) {
	if line != "" && isLetter(line[0]) {
		if num == 0 {
			rd.setHeader(items(line))
		}
		return // header, or a comment/summary line
	}
	if num == 0 {
		rd.setHeader(defaultHeader)
	}
	fields := items(line)
	if len(fields) != rd.nfields {
		return // wrong item count, e.g. nfdump's summary values
	}
	get := func(ro role) (string, bool) {
		if c := rd.columns[ro]; c >= 0 {
			return pytext.Strip(fields[c]), true
		}
		return "", false
	}
	src, ok1 := get(roleSrc)
	srcPort, ok2 := get(roleSrcPort)
	dst, ok3 := get(roleDst)
	dstPort, ok4 := get(roleDstPort)
	start, ok5 := get(roleStart)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return // R-NF-3: the reference cannot build the key
	}
	t, ok := parseStart(start, rd.loc)
	if !ok {
		return // R-NF-5
	}
	if src == "0.0.0.0" || dst == "0.0.0.0" {
		return // R-NF-4
	}
	rec := record{line: at, t: t, src: src, srcPort: srcPort, dst: dst, dstPort: dstPort,
		duration: "-", srcBytes: "-", dstBytes: "-", srcPackets: "0", dstPackets: "0"}
	proto := "-"
	if p, ok := get(roleProto); ok {
		proto = strings.ToLower(p)
	}
	switch proto {
	case "icmp", "icmp6":
		rec.proto = flow.ProtoICMP
		rec.srcPort, rec.dstPort = "", ""
	case "udp":
		rec.proto = flow.ProtoUDP
	case "tcp":
		rec.proto = flow.ProtoTCP
	}
	if v, ok := get(roleDuration); ok {
		rec.duration = v
	}
	if v, ok := get(roleSrcBytes); ok {
		rec.srcBytes = v
	}
	if v, ok := get(roleDstBytes); ok {
		rec.dstBytes = v
	}
	if v, ok := get(roleSrcPkts); ok {
		rec.srcPackets = v
	}
	if v, ok := get(roleDstPkts); ok {
		rec.dstPackets = v
	}
	icmp := rec.proto == flow.ProtoICMP
	rec.key = flow.Key(rec.src, rec.srcPort, rec.dst, rec.dstPort, icmp)
	rec.rkey = flow.Key(rec.dst, rec.dstPort, rec.src, rec.srcPort, icmp)
	// R-NF-7: join the group of the key, else that of the reverse key (flipping the record), else open one.
	g := rd.index[rec.key]
	if g == nil {
		if g = rd.index[rec.rkey]; g != nil {
			rec.flip()
		} else {
			g = &group{key: rec.key}
			rd.index[rec.key] = g
			rd.groups = append(rd.groups, g)
		}
	}
	g.recs = append(g.recs, rec)
}

// orderedFlows is an insertion-ordered map of flows, like the reference's dict of BayseFlows.
type orderedFlows struct {
	list  []*flow.Flow // nil where deleted
	index map[string]int
}

func (o *orderedFlows) set(key string, f *flow.Flow) {
	if i, ok := o.index[key]; ok {
		o.list[i] = f
		return
	}
	o.index[key] = len(o.list)
	o.list = append(o.list, f)
}

func (o *orderedFlows) del(key string) {
	if i, ok := o.index[key]; ok {
		o.list[i] = nil
		delete(o.index, key)
	}
}

// flows builds one flow per group (R-NF-6, R-NF-8, R-NF-9).
func (rd *reader) flows() (flow.Sample, error) {
	s := flow.Sample{Start: flow.NoStart}
	for _, g := range rd.groups { // R-NF-6
		for i := range g.recs {
			if g.recs[i].t < s.Start {
				s.Start = g.recs[i].t
			}
		}
	}
	out := &orderedFlows{index: make(map[string]int)}
	for _, g := range rd.groups {
		sort.SliceStable(g.recs, func(i, j int) bool { return g.recs[i].t < g.recs[j].t })
		var f *flow.Flow
		for i := range g.recs {
			rec := &g.recs[i]
			if _, ok := out.index[rec.key]; !ok {
				f = &flow.Flow{SrcAddr: rec.src, SrcPort: rec.srcPort, DstAddr: rec.dst, DstPort: rec.dstPort,
					Protocol: rec.proto, First: rec.t}
				out.set(rec.key, f)
			} else if f == nil {
				// The reference would use its empty flow variable here and abort; the pairing rule makes
				// this unreachable.
				return s, rd.errorf(rec.line, "flow key %q already used by an earlier flow", rec.key)
			}
			if err := rd.add(f, rec); err != nil {
				return s, err
			}
		}
		last := &g.recs[len(g.recs)-1]
		h, ok := headerBytes(last)
		if !ok {
			// R-NF-8: no deduction, no duration (written -1), no direction check.
			f.DurationUnknown = true
			continue
		}
		var err error
		if f.SrcBytes, err = deduct(f.SrcBytes, f.SrcPkts, h); err != nil {
			return s, rd.errorf(g.recs[0].line, "%v", err)
		}
		if f.DstBytes, err = deduct(f.DstBytes, f.DstPkts, h); err != nil {
			return s, rd.errorf(g.recs[0].line, "%v", err)
		}
		flip, err := wrongDirection(f)
		if err != nil {
			return s, rd.errorf(g.recs[0].line, "%v", err)
		}
		if flip {
			// R-NF-8, R-NF-9: flip, and move the flow to the end of the creation order now: the reference
			// deletes it and stores it again under its reverse key while it builds the groups' flows, so
			// it lands after the flows of earlier groups and before those of later ones. (No later group
			// can have that key: R-NF-7 pairs a key and its reverse into one group.)
			f.Flip()
			out.del(last.key)
			out.list = append(out.list, f)
		}
	}
	for _, f := range out.list {
		if f != nil {
			s.Flows = append(s.Flows, *f)
		}
	}
	return s, nil
}

// add counts one record into its flow (R-NF-8).
func (rd *reader) add(f *flow.Flow, rec *record) error {
	var err error
	for _, c := range []struct {
		dst  *int64
		text string
	}{{&f.SrcPkts, rec.srcPackets}, {&f.DstPkts, rec.dstPackets}} {
		v, ok := pytext.Int(c.text)
		if !ok {
			return rd.errorf(rec.line, "packet count %q is not an integer", c.text)
		}
		if *c.dst, err = addInt(*c.dst, v); err != nil {
			return rd.errorf(rec.line, "%v", err)
		}
	}
	for _, c := range []struct {
		dst  *int64
		text string
	}{{&f.SrcBytes, rec.srcBytes}, {&f.DstBytes, rec.dstBytes}} {
		if v, ok := pytext.Int(c.text); ok { // bytes that are not an integer ("-") are skipped
			if *c.dst, err = addInt(*c.dst, v); err != nil {
				return rd.errorf(rec.line, "%v", err)
			}
		}
	}
	end := rec.t
	if rec.duration != "-" {
		d, ok := pytext.Float(rec.duration)
		if !ok {
			return rd.errorf(rec.line, "duration %q is not a number", rec.duration)
		}
		end = rec.t + d
	}
	if end > f.Last { // Python's max(last, end): a NaN end leaves last as it is
		f.Last = end
	}
	return nil
}

// addInt adds a parsed counter to a running total; totals beyond int64 are refused (Python's integers are
// unbounded; no real export comes near this).
func addInt(total int64, v *big.Int) (int64, error) {
	if !v.IsInt64() {
		return total, fmt.Errorf("counter %s out of range", v)
	}
	x := v.Int64()
	if (x > 0 && total > math.MaxInt64-x) || (x < 0 && total < math.MinInt64-x) {
		return total, errors.New("counter total out of range")
	}
	return total + x, nil
}

// deduct removes the header bytes of every packet from a byte count (R-NF-8), without clamping.
func deduct(b, pkts, h int64) (int64, error) {
	hi, lo := bigMul(pkts, h)
	if !hi {
		return b, errors.New("header byte total out of range")
	}
	if (lo > 0 && b < math.MinInt64+lo) || (lo < 0 && b > math.MaxInt64+lo) {
		return b, errors.New("byte count out of range")
	}
	return b - lo, nil
}

func bigMul(a, b int64) (bool, int64) {
	p := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	if !p.IsInt64() {
		return false, 0
	}
	return true, p.Int64()
}

// headerBytes returns the per-packet header size of R-NF-8 from the group's last record: its source text
// parsed as Python's IPv4Address, else IPv6Address (which accepts a zone), and its protocol. ok is false
// when the text is neither.
func headerBytes(last *record) (int64, bool) {
	a, err := netip.ParseAddr(last.src)
	if err != nil {
		return 0, false
	}
	var h int64
	icmp := last.proto == flow.ProtoICMP
	switch {
	case a.Is4():
		h = 20
		if icmp {
			h += 8
		}
	default:
		h = 40
		if icmp {
			h += 4
		}
	}
	switch last.proto {
	case flow.ProtoTCP:
		h += 20
	case flow.ProtoUDP:
		h += 8
	}
	return h, true
}

var (
	big49151 = big.NewInt(49151)
	big1023  = big.NewInt(1023)
	big1024  = big.NewInt(1024)
)

// wrongDirection applies R-DIR to a finished flow (A = its source, B = its destination) and reports
// whether B should be the source. It evaluates in the reference's order and only what the reference
// evaluates, so an address that is not an IP address (R-ERR-6) or a port that is not an integer aborts
// exactly when the reference's check reaches it.
func wrongDirection(f *flow.Flow) (bool, error) {
	icmp := f.Protocol == flow.ProtoICMP
	a, ok := flow.ParseAddr(f.SrcAddr)
	if !ok {
		return false, fmt.Errorf("source address %q is not an IP address", f.SrcAddr)
	}
	port := func(s string) (*big.Int, error) {
		v, ok := pytext.Int(s)
		if !ok {
			return nil, fmt.Errorf("port %q is not an integer", s)
		}
		return v, nil
	}
	localB := func() (bool, error) {
		b, ok := flow.ParseAddr(f.DstAddr)
		if !ok {
			return false, fmt.Errorf("destination address %q is not an IP address", f.DstAddr)
		}
		return flow.IsLocal(b), nil
	}
	if flow.IsLocal(a) {
		if f.SrcPort == "" && icmp {
			return false, nil // R-DIR-L1
		}
		sp, err := port(f.SrcPort)
		if err != nil {
			return false, err
		}
		if sp.Cmp(big49151) > 0 {
			return false, nil // R-DIR-L2
		}
		dp, err := port(f.DstPort)
		if err != nil {
			return false, err
		}
		if dp.Cmp(big49151) > 0 {
			return true, nil // R-DIR-L3
		}
		if dp.Cmp(big1024) < 0 {
			return false, nil // R-DIR-L4
		}
		return dp.Cmp(sp) > 0, nil // R-DIR-L5
	}
	if f.DstPort == "" && icmp { // R-DIR-N1
		lb, err := localB()
		return lb, err
	}
	lb, err := localB()
	if err != nil {
		return false, err
	}
	if !lb {
		dp, err := port(f.DstPort)
		if err != nil {
			return false, err
		}
		if dp.Cmp(big1023) > 0 {
			sp, err := port(f.SrcPort)
			if err != nil {
				return false, err
			}
			if sp.Cmp(big1023) > 0 {
				return false, nil // R-DIR-N2
			}
		}
	}
	dp, err := port(f.DstPort)
	if err != nil {
		return false, err
	}
	sp, err := port(f.SrcPort)
	if err != nil {
		return false, err
	}
	return dp.Cmp(sp) > 0, nil // R-DIR-N3
}
