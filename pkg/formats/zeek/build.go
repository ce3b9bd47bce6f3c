package zeek

import (
	"fmt"
	"sort"
	"strings"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/internal/pytext"
)

// label maps Zeek's proto to the flow label (R-ZEEK-4).
func label(proto string) flow.Protocol {
	switch strings.ToLower(proto) {
	case "tcp":
		return flow.ProtoTCP
	case "udp":
		return flow.ProtoUDP
	case "icmp":
		return flow.ProtoICMP
	}
	return flow.ProtoOther
}

func (r *record) key() string {
	icmp := label(r.proto) == flow.ProtoICMP
	return flow.Key(r.origH, r.origP, r.respH, r.respP, icmp)
}

// swap exchanges the originator and responder sides of a record (R-ZEEK-7).
func (r *record) swap() {
	r.origH, r.respH = r.respH, r.origH
	r.origP, r.respP = r.respP, r.origP
	r.origBytes, r.respBytes = r.respBytes, r.origBytes
	r.origPkts, r.respPkts = r.respPkts, r.origPkts
	r.origIPBytes, r.respIPBytes = r.respIPBytes, r.origIPBytes
	r.history = swapCase(r.history)
}

func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 32
		case c >= 'A' && c <= 'Z':
			b[i] = c + 32
		}
	}
	return string(b)
}

func newFlow(r *record) *flow.Flow {
	f := &flow.Flow{SrcAddr: r.origH, SrcPort: r.origP, DstAddr: r.respH, DstPort: r.respP,
		Protocol: label(r.proto), Identifier: r.uid, First: r.ts}
	if f.Protocol == flow.ProtoICMP {
		f.SrcPort, f.DstPort = "", ""
	}
	return f
}

// pyInt parses text as Python's int() does (pytext.Int), within int64: a count beyond it is treated as
// not an integer.
func pyInt(s string) (int64, bool) {
	v, ok := pytext.Int(s)
	if !ok || !v.IsInt64() {
		return 0, false
	}
	return v.Int64(), true
}

// build groups records and makes one flow per group (R-ZEEK-5 … R-ZEEK-9).
func build(recs []record, name string) (flow.Sample, error) {
	s := flow.Sample{Start: flow.NoStart}
	groups := map[string][]*record{}
	var order []string
	for i := range recs {
		r := &recs[i]
		if r.ts < s.Start { // R-ZEEK-5
			s.Start = r.ts
		}
		k := r.key()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	stored := map[string]int{} // key -> index in flows
	var flows []*flow.Flow
	store := func(k string, f *flow.Flow) {
		if i, ok := stored[k]; ok {
			flows[i] = f
			return
		}
		stored[k] = len(flows)
		flows = append(flows, f)
	}
	for _, gk := range order {
		g := groups[gk]
		sort.SliceStable(g, func(i, j int) bool { return g[i].ts < g[j].ts })
		var nsS, nsD, svS, svD int64
		var obj *flow.Flow
		for _, r := range g {
			swapped, err := mustSwap(r)
			if err != nil {
				return s, fmt.Errorf("%s:%d: %w", name, r.line, err)
			}
			if swapped {
				r.swap()
				obj = newFlow(r)
				store(r.key(), obj)
			}
			if _, ok := stored[r.key()]; !ok {
				obj = newFlow(r)
				store(r.key(), obj)
			}
			if obj == nil {
				return s, fmt.Errorf("%s:%d: the flow %s was already built from swapped records (R-ZEEK-7)", name, r.line, r.key())
			}
			op, ok1 := pyInt(r.origPkts)
			rp, ok2 := pyInt(r.respPkts)
			if !ok1 || !ok2 {
				return s, fmt.Errorf("%s:%d: packet counts %q/%q are not integers", name, r.line, r.origPkts, r.respPkts)
			}
			obj.SrcPkts += op
			obj.DstPkts += rp
			end := r.ts
			if r.duration != "-" {
				d, ok := pytext.Float(r.duration) // Python's float(): overflow is +Inf, not an error
				if !ok {
					return s, fmt.Errorf("%s:%d: duration %q is not a number", name, r.line, r.duration)
				}
				end = r.ts + d
			}
			if end > obj.Last {
				obj.Last = end
			}
			if err := bytesRule(r, &nsS, &nsD, &svS, &svD); err != nil {
				return s, fmt.Errorf("%s:%d: %w", name, r.line, err)
			}
		}
		if obj != nil {
			obj.SrcBytes = max(obj.SrcBytes, nsS, svS)
			obj.DstBytes = max(obj.DstBytes, nsD, svD)
		}
	}
	s.Flows = make([]flow.Flow, len(flows))
	for i, f := range flows {
		s.Flows[i] = *f
	}
	return s, nil
}

// mustSwap reports whether the responder is local and the originator is not (R-ZEEK-7). Address text
// that is not an address aborts, as in the reference (R-ERR-6); Python's "and" does not evaluate the
// originator when the responder is not local.
func mustSwap(r *record) (bool, error) {
	resp, ok := flow.ParseAddr(r.respH)
	if !ok {
		return false, fmt.Errorf("responder address %q is not an IP address", r.respH)
	}
	if !flow.IsLocal(resp) {
		return false, nil
	}
	orig, ok := flow.ParseAddr(r.origH)
	if !ok {
		return false, fmt.Errorf("originator address %q is not an IP address", r.origH)
	}
	return !flow.IsLocal(orig), nil
}

// bytesRule applies the history-driven byte counting of R-ZEEK-8 to one record.
func bytesRule(r *record, nsS, nsD, svS, svD *int64) error {
	h := r.history
	setIf := func(dst *int64, text string, keepMax bool) {
		if v, ok := pyInt(text); ok {
			if keepMax {
				*dst = max(*dst, v)
			} else {
				*dst = v
			}
		}
	}
	if r.service == "-" {
		switch {
		case h == "S":
			*nsS, *nsD = 0, 0
		case *nsS == 0 || *nsD == 0:
			if (h != "-" && !strings.ContainsAny(h, "dt")) || r.origBytes == "-" {
				*nsS = 0
			} else {
				v, ok := pyInt(r.origBytes)
				if !ok {
					return fmt.Errorf("orig_bytes %q is not an integer", r.origBytes)
				}
				*nsS = v
			}
			if h != "-" && !strings.ContainsAny(h, "Dt") {
				*nsD = 0
			} else {
				setIf(nsD, r.respBytes, false)
			}
		default:
			setIf(nsS, r.origIPBytes, true)
			setIf(nsD, r.respIPBytes, true)
		}
		return nil
	}
	if *svS == 0 || *svD == 0 {
		setIf(svS, r.origBytes, false)
		setIf(svD, r.respBytes, false)
	} else {
		setIf(svS, r.origBytes, true)
		setIf(svD, r.respBytes, true)
	}
	return nil
}
