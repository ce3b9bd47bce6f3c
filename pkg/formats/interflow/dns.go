package interflow

import (
	"math"
	"strings"
	"unicode/utf8"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// dnsRecord is what a DNS record of the log contributes to the answer table (R-IF-8).
type dnsRecord struct {
	name    string // query + "."
	t       float64
	answers string // the A/AAAA host_addr texts joined by ",", or "-"
}

// addTo registers the name and files its answers: with a comma, each part that is an IP address,
// normalised (R-OUT-7); otherwise the text as it is, even "" or "-".
func (d *dnsRecord) addTo(table *flow.AnswerTable) {
	table.Register(d.name)
	if !strings.Contains(d.answers, ",") {
		table.Add(d.name, d.t, d.answers)
		return
	}
	for _, a := range strings.Split(d.answers, ",") {
		if addr, ok := flow.ParseAddr(a); ok {
			table.Add(d.name, d.t, flow.AddrText(addr))
		}
	}
}

// parseDNS fills the DNS part of a record (R-IF-8), following the reference's order of evaluation: a
// record whose first(appid_name) is "dns" in any case is read as DNS data; a failure while reading it
// only skips it as DNS data, except a first(appid_name) that is not a string, on which the reference
// aborts.
func parseDNS(rec *record, v *jval, fs *firsts) {
	app := fs[fAppID]
	if app == nil {
		return
	}
	if app.k != kStr {
		rec.appIDNotString = true
		return
	}
	if strings.ToLower(app.s) != "dns" {
		return
	}
	ts := fs[fTimestamp]
	if ts == nil {
		return
	}
	tsText := pyText(ts)
	var t float64
	switch utf8.RuneCountInString(tsText) {
	case 13:
		x, err := floatOf(ts)
		if err != nil {
			return
		}
		if strings.Contains(tsText, ".") {
			t = x
		} else {
			t = x / 1000.0
		}
	case 10:
		x, err := floatOf(ts)
		if err != nil {
			return
		}
		t = x
	default:
		// R-IF-8: no time, the record is ignored as DNS data. (The reference's code would reuse the time
		// of an earlier DNS record, or fail; docs/bayseflow.md fixes this behaviour.)
		return
	}
	if math.IsNaN(t) || math.IsInf(t, 0) {
		return // FlowFleet: as for flows, a time that is not finite is not used
	}
	if fs[fSrcPort] == nil {
		return
	}
	meta := firstMetadata(v)
	if meta == nil {
		return
	}
	request, err := pyIndex(meta, "request")
	if err != nil {
		return
	}
	response, err := pyIndex(meta, "response")
	if err != nil {
		return
	}
	query, err := pyIndex(request, "query")
	if err != nil {
		return
	}
	d := &dnsRecord{name: pyText(query) + "."}
	qtype := "-"
	if qt := request.get("query_type"); qt != nil && qt.k == kStr {
		switch qt.s {
		case "A":
			qtype = "1"
		case "AAAA":
			qtype = "28"
		}
	}
	optional := func(key, def string) (string, bool) {
		has, err := pyIn(key, response)
		if err != nil {
			return "", false
		}
		if !has {
			return def, true
		}
		x, err := pyIndex(response, key)
		if err != nil {
			return "", false
		}
		return pyText(x), true
	}
	rtt, ok := optional("response_time", "-")
	if !ok {
		return
	}
	rcode, ok := optional("reply_code", "NOERROR")
	if !ok {
		return
	}
	d.answers = "-"
	has, err := pyIn("answers", response)
	if err != nil {
		return
	}
	if has {
		list, err := pyIndex(response, "answers")
		if err != nil {
			return
		}
		if list.k == kArr {
			var b strings.Builder
			for i := range list.arr {
				a := &list.arr[i]
				has, err := pyIn("host_type", a)
				if err != nil {
					return
				}
				if !has {
					continue
				}
				ht, err := pyIndex(a, "host_type")
				if err != nil {
					return
				}
				if ht.container() {
					return // unhashable: `in dict.keys()` raises TypeError
				}
				if ht.k != kStr || (ht.s != "A" && ht.s != "AAAA") {
					continue
				}
				if addr := a.get("host_addr"); addr != nil {
					b.WriteString(pyText(addr))
					b.WriteByte(',')
				}
			}
			d.answers = strings.TrimSuffix(b.String(), ",")
		}
	}
	// Used for A/AAAA queries, or without a response time and with the reply code exactly "No Error"
	// (the default "NOERROR" never matches) (quirk).
	if qtype != "1" && qtype != "28" && (rtt != "-" || rcode != "No Error") {
		return
	}
	d.t = t
	rec.dns = d
}

// firstMetadata is the reference's json_extract(record, "metadata", dict_expected=True)[0]: walking the
// record's top level in document order, the first member whose value is an object (whatever its name), or
// the first non-container value of a "metadata" member found inside a top-level array or at the top
// level. For a record that is an array, its first object element plays that role.
func firstMetadata(v *jval) *jval {
	switch v.k {
	case kObj:
		for i := range v.obj {
			m := &v.obj[i]
			switch {
			case m.val.k == kObj:
				return &m.val
			case m.val.k == kArr:
				if r := firstNamed(&m.val, "metadata"); r != nil {
					return r
				}
			case m.key == "metadata":
				return &m.val
			}
		}
	case kArr:
		for i := range v.arr {
			e := &v.arr[i]
			if e.k == kObj {
				return e
			}
			if r := firstNamed(e, "metadata"); r != nil {
				return r
			}
		}
	}
	return nil
}

// firstNamed is first(key) of R-IF-2 for one name.
func firstNamed(v *jval, key string) *jval {
	switch v.k {
	case kObj:
		for i := range v.obj {
			m := &v.obj[i]
			if m.val.container() {
				if r := firstNamed(&m.val, key); r != nil {
					return r
				}
			} else if m.key == key {
				return &m.val
			}
		}
	case kArr:
		for i := range v.arr {
			if r := firstNamed(&v.arr[i], key); r != nil {
				return r
			}
		}
	}
	return nil
}
