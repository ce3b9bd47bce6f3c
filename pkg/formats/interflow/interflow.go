// Package interflow reads Stellar Cyber Interflow logs (JSON records, one value a line) into flows and
// DNS answers exactly as the reference converter, bayse-tools 1.0.5, does. The rules are section 7 of
// docs/bayseflow.md (R-IF-1 … R-IF-8); rule ids in comments refer to it.
//
// [Read] returns the flows in creation order (R-IF-5) with the conversion start time S (R-IF-4) and the
// answer table built from the DNS records inside the log (R-IF-8); the driver finishes the flows with
// flow.Finalize and names them (session names from dstip_host win, R-IF-6).
//
// The reference handles each record with Python's dynamic typing: a field may be found anywhere in the
// record (R-IF-2) and may be a number, a string, a boolean or null. This package reproduces what Python
// does with each of them (arithmetic on counters, str() of values, int() and float() of text), so that
// records are kept, skipped or make the conversion fail exactly when the reference's would.
//
// Everything read is bounded: a line may hold at most MaxLine bytes and nest at most MaxDepth levels.
// Records are reduced to what the conversion needs as soon as their line is decoded.
package interflow

import (
	"fmt"
	"github.com/flowfleet/flowfleet/internal/pytext"
	"io"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// MaxLine bounds one line of the input, in bytes (an array of records may fill a line).
const MaxLine = 16 << 20

// The member names the reference looks for with first() (R-IF-2).
const (
	fSrcIP = iota
	fSrcPort
	fDstIP
	fDstPort
	fTimestamp
	fDuration
	fOutBytes
	fInBytes
	fTotalBytes
	fOutPkts
	fOutPktsTotal
	fInPkts
	fInPktsTotal
	fTotalPkts
	fHost
	fProto
	fAppID
	numFields
)

var fieldIDs = map[string]int{
	"srcip": fSrcIP, "srcport": fSrcPort, "dstip": fDstIP, "dstport": fDstPort, "timestamp": fTimestamp,
	"duration": fDuration, "outbytes_total": fOutBytes, "inbytes_total": fInBytes, "totalbytes": fTotalBytes,
	"outpkts_delta": fOutPkts, "outpkts_total": fOutPktsTotal, "inpkts_delta": fInPkts,
	"inpkts_total": fInPktsTotal, "totalpackets": fTotalPkts, "dstip_host": fHost, "proto_name": fProto,
	"appid_name": fAppID,
}

// firsts holds first(k) for every name of interest: the first value stored under k in a depth-first walk
// of the record in document order, objects and arrays searched into but never returned (R-IF-2).
type firsts [numFields]*jval

func (fs *firsts) walk(v *jval) {
	switch v.k {
	case kObj:
		for i := range v.obj {
			m := &v.obj[i]
			if m.val.container() {
				fs.walk(&m.val)
			} else if id, ok := fieldIDs[m.key]; ok && fs[id] == nil {
				fs[id] = &m.val
			}
		}
	case kArr:
		for i := range v.arr {
			if v.arr[i].container() {
				fs.walk(&v.arr[i])
			}
		}
	}
}

// durKind says what a record's duration is (R-IF-4).
type durKind uint8

const (
	durNone  durKind = iota // "-": no top-level duration member
	durValue                // a number of seconds
	durBad                  // text that float() refuses: the reference aborts when it reaches it
)

// record is one Interflow record reduced to what the conversion needs.
type record struct {
	line int

	// Flow part (R-IF-3 … R-IF-6); kept is false for records the reference skips.
	kept                  bool
	key                   string
	src, srcPort          string
	dst, dstPort          string
	proto                 flow.Protocol
	t                     float64
	noTime                bool // timestamp text neither 10 nor 13 characters: aborts (R-ERR-11)
	hasName               bool
	name                  string
	dur                   durKind
	durSecs               float64
	durText               string
	outBytes, inBytes     string
	outPackets, inPackets string
	appIDNotString        bool // first(appid_name) is not a string: the reference aborts (R-IF-8)
	dns                   *dnsRecord
}

// Read parses an Interflow JSON log (R-IF-1 … R-IF-8). It returns the flows in creation order (R-IF-5)
// with Start = S (R-IF-4; flow.NoStart when no record was kept), each flow's First, Last, counters,
// Protocol, ports, Identifier "" and, for session names, Name (NameSource left empty); relativeStart and
// duration are left to flow.Finalize. answers holds the DNS records found inside the log (R-IF-8), nil if
// none.
//
// A file that is not JSON text, a line that is not exactly one JSON value, and the record contents on
// which the reference aborts are errors naming the file and the line.
func Read(r io.Reader, name string) (s flow.Sample, answers *flow.AnswerTable, err error) {
	s.Start = flow.NoStart
	empty := s // what an error returns
	lr := pytext.NewLineReader(r, MaxLine)
	var recs []record
	lines := 0
	for {
		line, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return empty, nil, fmt.Errorf("%s:%d: %v", name, lr.Line(), err)
		}
		lines++
		if err := pytext.CheckText(line); err != nil {
			return empty, nil, fmt.Errorf("%s:%d: not a JSON text file: %v", name, lr.Line(), err)
		}
		v, err := decodeLine(line)
		if err != nil {
			return empty, nil, fmt.Errorf("%s:%d: not one complete JSON value: %v", name, lr.Line(), err)
		}
		switch v.k {
		case kArr: // R-IF-1: an array line replaces the records so far
			recs = make([]record, 0, len(v.arr))
			for i := range v.arr {
				recs = append(recs, parseRecord(&v.arr[i], lr.Line()))
			}
		case kObj:
			recs = append(recs, parseRecord(&v, lr.Line()))
		default:
			// Any other value makes the reference drop every record and stop reading.
			return s, nil, nil
		}
	}
	if lines == 0 {
		return empty, nil, fmt.Errorf("%s: empty file (not JSON)", name)
	}

	// R-IF-8: the DNS records, read before any flow is built.
	table := flow.NewAnswerTable()
	for i := range recs {
		rec := &recs[i]
		if rec.appIDNotString {
			return empty, nil, fmt.Errorf("%s:%d: appid_name is not a string", name, rec.line)
		}
		if rec.dns != nil {
			rec.dns.addTo(table)
		}
	}
	if table.Len() > 0 {
		answers = table
	}

	// R-IF-5: group the kept records by key, groups in order of first appearance.
	var groups [][]*record
	index := make(map[string]int)
	for i := range recs {
		rec := &recs[i]
		if !rec.kept {
			continue
		}
		g, ok := index[rec.key]
		if !ok {
			g = len(groups)
			index[rec.key] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], rec)
	}

	// R-IF-4: S is the smallest time of the kept records; one without a time aborts (R-ERR-11).
	for _, g := range groups {
		for _, rec := range g {
			if rec.noTime {
				return empty, nil, fmt.Errorf("%s:%d: timestamp is neither 13 nor 10 characters long", name, rec.line)
			}
			if rec.t < s.Start {
				s.Start = rec.t
			}
		}
	}

	// R-IF-5: one flow per group.
	s.Flows = make([]flow.Flow, 0, len(groups))
	for _, g := range groups {
		sort.SliceStable(g, func(i, j int) bool { return g[i].t < g[j].t })
		first := g[0]
		f := flow.Flow{SrcAddr: first.src, SrcPort: first.srcPort, DstAddr: first.dst, DstPort: first.dstPort,
			Protocol: first.proto, First: first.t}
		for _, rec := range g {
			if err := add(&f, rec); err != nil {
				return empty, nil, fmt.Errorf("%s:%d: %v", name, rec.line, err)
			}
		}
		s.Flows = append(s.Flows, f)
	}
	return s, answers, nil
}

// add counts one record into its flow (R-IF-5).
func add(f *flow.Flow, rec *record) error {
	for _, c := range []struct {
		dst  *int64
		text string
	}{{&f.SrcPkts, rec.outPackets}, {&f.DstPkts, rec.inPackets}} {
		v, ok := pytext.Int(c.text)
		if !ok {
			return fmt.Errorf("packet count %q is not an integer", c.text)
		}
		if err := addTo(c.dst, v.IsInt64(), v.Int64()); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		dst  *int64
		text string
	}{{&f.SrcBytes, rec.outBytes}, {&f.DstBytes, rec.inBytes}} {
		if v, ok := pytext.Int(c.text); ok { // bytes that are not an integer are skipped
			if err := addTo(c.dst, v.IsInt64(), v.Int64()); err != nil {
				return err
			}
		}
	}
	end := rec.t
	switch rec.dur {
	case durBad:
		return fmt.Errorf("duration %q is not a number", rec.durText)
	case durValue:
		end = rec.t + rec.durSecs
	}
	if end > f.Last { // Python's max(last, end): a NaN end leaves last as it is
		f.Last = end
	}
	if rec.hasName {
		f.Name = rec.name // the last record with a dstip_host wins, even with "" (R-IF-5, R-IF-6)
	}
	return nil
}

// addTo adds a counter to a running total; values and totals beyond int64 are refused (Python's integers
// are unbounded; no real log comes near this).
func addTo(total *int64, fits bool, x int64) error {
	if !fits || (x > 0 && *total > math.MaxInt64-x) || (x < 0 && *total < math.MinInt64-x) {
		return fmt.Errorf("counter out of range")
	}
	*total += x
	return nil
}

// parseRecord reduces one record to its flow part and its DNS part, following the reference's order of
// evaluation so that a record is skipped exactly when the reference's parser fails on it.
func parseRecord(v *jval, line int) record {
	rec := record{line: line}
	var fs firsts
	fs.walk(v)
	parseFlow(&rec, v, &fs)
	parseDNS(&rec, v, &fs)
	return rec
}

// parseFlow fills the flow part (R-IF-3 … R-IF-6); rec.kept stays false when the reference skips the
// record.
func parseFlow(rec *record, v *jval, fs *firsts) {
	if v.k != kObj {
		return // the reference's v["_id"] fails on anything but an object
	}
	for _, id := range []int{fSrcIP, fSrcPort, fDstIP, fDstPort, fTimestamp} {
		if fs[id] == nil {
			return // a required field is missing (R-IF-3)
		}
	}
	out, in, outP, inP, ok := counters(fs)
	if !ok {
		return
	}
	rec.src, rec.srcPort = pyText(fs[fSrcIP]), pyText(fs[fSrcPort])
	rec.dst, rec.dstPort = pyText(fs[fDstIP]), pyText(fs[fDstPort])
	rec.key = rec.src + ":" + rec.srcPort + "-" + rec.dst + ":" + rec.dstPort

	// R-IF-4: the time and its unit.
	ms := true
	ts := fs[fTimestamp]
	tsText := pyText(ts)
	switch utf8.RuneCountInString(tsText) {
	case 13:
		x, err := floatOf(ts)
		if err != nil {
			return
		}
		if !strings.Contains(tsText, ".") {
			rec.t = x / 1000.0
		} else {
			rec.t = x
			ms = false
		}
	case 10:
		x, err := floatOf(ts)
		if err != nil {
			return
		}
		rec.t = x
		ms = false
	default:
		rec.noTime = true
	}
	if v.get("_id") == nil {
		return // `_id` must be a top-level member
	}
	if h := fs[fHost]; h != nil {
		rec.hasName, rec.name = true, pyText(h)
	}
	if p := fs[fProto]; p != nil {
		if p.k != kStr {
			return // the reference calls .lower() on it and fails
		}
		switch strings.ToLower(p.s) {
		case "tcp":
			rec.proto = flow.ProtoTCP
		case "udp":
			rec.proto = flow.ProtoUDP
		case "icmp":
			rec.proto = flow.ProtoICMP
			rec.srcPort, rec.dstPort = "", ""
			rec.key = flow.Key(rec.src, "", rec.dst, "", true)
		}
	}
	// Duration: only with a top-level `duration` member, and then first(duration) (R-IF-4).
	if v.get("duration") != nil {
		d := fs[fDuration]
		if d == nil {
			return // the top-level member is an object or array with no duration inside
		}
		if ms {
			x, err := floatOf(d)
			if err != nil {
				return
			}
			rec.dur, rec.durSecs = durValue, x/1000.0
			rec.durText = pyText(d)
		} else {
			rec.durText = pyText(d)
			if rec.durText != "-" {
				if x, ok := pytext.Float(rec.durText); ok {
					rec.dur, rec.durSecs = durValue, x
				} else {
					rec.dur = durBad
				}
			}
		}
	}
	rec.outBytes, rec.inBytes, rec.outPackets, rec.inPackets = out, in, outP, inP
	rec.kept = true
}

// counter is one counter of R-IF-3: a JSON value found in the record, or a number derived from others.
type counter struct {
	v       *jval
	derived *pyNum
}

func (c counter) known() bool { return c.v != nil || c.derived != nil }

func (c counter) num() (pyNum, error) {
	if c.derived != nil {
		return *c.derived, nil
	}
	return asNum(c.v)
}

func (c counter) text() string {
	if c.derived != nil {
		return c.derived.text()
	}
	return pyText(c.v)
}

// counters derives the four counters of R-IF-3 as the reference does, with Python's arithmetic on
// whatever types the values have; ok is false when a counter stays unknown or the arithmetic fails (the
// reference skips the record).
func counters(fs *firsts) (out, in, outP, inP string, ok bool) {
	get := func(id int) counter { return counter{v: fs[id]} }
	outB, inB, totB := get(fOutBytes), get(fInBytes), get(fTotalBytes)
	outK, outT, inK, inT, totP := get(fOutPkts), get(fOutPktsTotal), get(fInPkts), get(fInPktsTotal), get(fTotalPkts)
	var err error
	derive := func(f func() (pyNum, error)) counter {
		if err != nil {
			return counter{}
		}
		var n pyNum
		if n, err = f(); err != nil {
			return counter{}
		}
		return counter{derived: &n}
	}
	minus := func(a, b counter) func() (pyNum, error) {
		return func() (pyNum, error) {
			x, err := a.num()
			if err != nil {
				return pyNum{}, err
			}
			y, err := b.num()
			if err != nil {
				return pyNum{}, err
			}
			return sub(x, y)
		}
	}
	ceil := func(a counter) func() (pyNum, error) {
		return func() (pyNum, error) {
			x, err := a.num()
			if err != nil {
				return pyNum{}, err
			}
			return ceilPackets(x)
		}
	}
	minusCeil := func(total, b counter) func() (pyNum, error) {
		return func() (pyNum, error) {
			c, err := ceil(b)()
			if err != nil {
				return pyNum{}, err
			}
			return minus(total, counter{derived: &c})()
		}
	}
	missing := false
	if !outB.known() {
		if !totB.known() || !inB.known() {
			missing = true
		} else {
			outB = derive(minus(totB, inB))
		}
	}
	if !inB.known() {
		if !totB.known() || !outB.known() {
			missing = true
		} else {
			inB = derive(minus(totB, outB))
		}
	}
	noTotal := !totP.known() || isZero(totP.v)
	if !outK.known() && !outT.known() {
		switch {
		case noTotal && !outB.known():
			missing = true
		case noTotal:
			outK = derive(ceil(outB))
		case inK.known():
			outK = derive(minus(totP, inK))
		case inB.known():
			outK = derive(minusCeil(totP, inB))
		default:
			missing = true
		}
	}
	if outT.known() && !outK.known() {
		outK = outT
	}
	if !inK.known() && !inT.known() {
		switch {
		case noTotal && !inB.known():
			missing = true
		case noTotal:
			inK = derive(ceil(inB))
		case outK.known():
			inK = derive(minus(totP, outK))
		case outB.known():
			inK = derive(minusCeil(totP, outB))
		default:
			missing = true
		}
	}
	if inT.known() && !inK.known() {
		inK = inT
	}
	if missing || err != nil {
		return "", "", "", "", false
	}
	for _, c := range []counter{outB, inB, outK, inK} {
		if c.derived != nil && c.derived.isInt && len(strings.TrimPrefix(c.derived.text(), "-")) > pytext.MaxIntDigits {
			return "", "", "", "", false // CPython refuses str() of an int of more than 4300 digits
		}
	}
	return outB.text(), inB.text(), outK.text(), inK.text(), true
}
