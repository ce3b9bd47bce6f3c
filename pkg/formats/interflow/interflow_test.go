package interflow

import (
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

func read(t *testing.T, text string) (flow.Sample, *flow.AnswerTable) {
	t.Helper()
	s, a, err := Read(strings.NewReader(text), "test.if")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return s, a
}

func readErr(t *testing.T, text string) error {
	t.Helper()
	_, _, err := Read(strings.NewReader(text), "test.if")
	if err == nil {
		t.Fatalf("Read succeeded, want an error")
	}
	if !strings.HasPrefix(err.Error(), "test.if") {
		t.Errorf("error %q does not name the file", err)
	}
	return err
}

func one(t *testing.T, s flow.Sample) flow.Flow {
	t.Helper()
	if len(s.Flows) != 1 {
		t.Fatalf("%d flows, want 1: %+v", len(s.Flows), s.Flows)
	}
	return s.Flows[0]
}

// base is a complete record; extra members are appended before the closing brace.
func base(extra string) string {
	return `{"srcip": "10.0.0.1", "srcport": 50000, "dstip": "93.184.216.34", "dstport": 443, ` +
		`"proto_name": "tcp", "timestamp": 1656517273742, "duration": 128, "_id": "x", ` +
		`"outbytes_total": 100, "inbytes_total": 200, "outpkts_delta": 1, "inpkts_delta": 2` + extra + "}"
}

// R-IF-1: JSON or NDJSON text, each line one complete JSON value.
func TestLines(t *testing.T) {
	t.Run("object lines are appended", func(t *testing.T) {
		s, _ := read(t, base("")+"\n"+strings.Replace(base(""), "50000", "50001", 1)+"\n")
		if len(s.Flows) != 2 {
			t.Errorf("%d flows", len(s.Flows))
		}
	})
	t.Run("an array line replaces the records so far", func(t *testing.T) {
		s, _ := read(t, base("")+"\n["+strings.Replace(base(""), "50000", "50001", 1)+"]\n")
		if f := one(t, s); f.SrcPort != "50001" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("any other value drops every record", func(t *testing.T) {
		for _, v := range []string{"42", `"text"`, "null", "true"} {
			s, a := read(t, base("")+"\n"+v+"\nnot json at all\n")
			if len(s.Flows) != 0 || s.Start != flow.NoStart || a != nil {
				t.Errorf("%s: got %+v %+v", v, s, a)
			}
		}
	})
	t.Run("CRLF", func(t *testing.T) {
		s, _ := read(t, base("")+"\r\n"+strings.Replace(base(""), "50000", "50001", 1)+"\r\n")
		if len(s.Flows) != 2 {
			t.Errorf("%d flows", len(s.Flows))
		}
	})
	for name, in := range map[string]string{
		"empty":          "",
		"blank line":     base("") + "\n\n",
		"pretty-printed": "[\n" + base("") + "\n]\n",
		"extra data":     base("") + " {}\n",
		"NaN literal":    `{"a": NaN}` + "\n",
		"binary":         "\x00\x01\x02",
		"invalid UTF-8":  `{"a": "` + "\xff" + `"}` + "\n",
		"too deep":       strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + "\n",
		"huge integer":   `{"a": ` + strings.Repeat("9", 4301) + "}\n",
	} {
		t.Run(name, func(t *testing.T) { readErr(t, in) })
	}
	t.Run("line numbers", func(t *testing.T) {
		err := readErr(t, base("")+"\n"+base("")+"\n{\n")
		if !strings.HasPrefix(err.Error(), "test.if:3:") {
			t.Errorf("error %q", err)
		}
	})
}

// R-IF-2: first(k) is a depth-first search in document order; containers are searched, not returned.
func TestFirst(t *testing.T) {
	t.Run("nested fields", func(t *testing.T) {
		s, _ := read(t, `{"flow": {"srcip": "10.0.0.9", "ports": [{"srcport": 7}]}, "srcip": "10.0.0.1", `+
			`"srcport": 50000, "dstip": "1.1.1.1", "dstport": {"v": 1}, "x": [1, "dstport", {"dstport": 53}], `+
			`"timestamp": 1656517273742, "_id": 1, "outbytes_total": 1, "inbytes_total": 2, "outpkts_delta": 1, "inpkts_delta": 1}`)
		f := one(t, s)
		if f.SrcAddr != "10.0.0.9" || f.SrcPort != "7" || f.DstPort != "53" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("a repeated name keeps its first position and its last value", func(t *testing.T) {
		s, _ := read(t, `{"srcip": "1.1.1.1", "x": {"srcip": "3.3.3.3"}, "srcip": "2.2.2.2", "srcport": 1, `+
			`"dstip": "4.4.4.4", "dstport": 2, "timestamp": 1656517273742, "_id": 1, "outbytes_total": 1, `+
			`"inbytes_total": 2, "outpkts_delta": 1, "inpkts_delta": 1}`)
		if f := one(t, s); f.SrcAddr != "2.2.2.2" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("_id must be top-level", func(t *testing.T) {
		s, _ := read(t, strings.Replace(base(""), `"_id": "x"`, `"meta": {"_id": "x"}`, 1))
		if len(s.Flows) != 0 {
			t.Errorf("got %+v", s.Flows)
		}
	})
	t.Run("records that are not objects are skipped", func(t *testing.T) {
		s, _ := read(t, "[["+base("")+"], 1, \"x\", null]")
		if len(s.Flows) != 0 {
			t.Errorf("got %+v", s.Flows)
		}
	})
}

func counterRecord(counters string) string {
	return `{"srcip": "10.0.0.1", "srcport": 1, "dstip": "1.1.1.1", "dstport": 2, "timestamp": 1656517273742, "_id": 1` +
		counters + "}"
}

// R-IF-3: required fields and counters, derived with Python's arithmetic.
func TestCounters(t *testing.T) {
	for _, c := range []struct {
		name, counters       string
		outP, outB, inP, inB int64
	}{
		{"spec example", `, "outbytes_total": 3000, "inbytes_total": 4000, "totalpackets": 10`, 7, 3000, 3, 4000},
		{"deltas win", `, "outbytes_total": 1, "inbytes_total": 2, "outpkts_delta": 3, "outpkts_total": 9, "inpkts_delta": 4, "inpkts_total": 9`, 3, 1, 4, 2},
		{"totals", `, "outbytes_total": 1, "inbytes_total": 2, "outpkts_total": 5, "inpkts_total": 6`, 5, 1, 6, 2},
		{"no total packets", `, "outbytes_total": 3000, "inbytes_total": 1514`, 2, 3000, 1, 1514},
		{"zero total packets", `, "outbytes_total": 0, "inbytes_total": 1515, "totalpackets": 0`, 0, 0, 2, 1515},
		{"false total packets equals 0", `, "outbytes_total": 1, "inbytes_total": 1, "totalpackets": false`, 1, 1, 1, 1},
		{"bytes from totalbytes", `, "totalbytes": 500, "inbytes_total": 200, "outpkts_delta": 1, "inpkts_delta": 1`, 1, 300, 1, 200},
		{"inbytes from totalbytes", `, "totalbytes": 500, "outbytes_total": 100, "outpkts_delta": 1, "inpkts_delta": 1`, 1, 100, 1, 400},
		{"outpkts from totalpackets and inbytes", `, "outbytes_total": 1, "inbytes_total": 1, "totalpackets": 5`, 4, 1, 1, 1},
		{"outpkts from totalpackets and inpkts", `, "outbytes_total": 1, "inbytes_total": 1, "totalpackets": 10, "inpkts_delta": 4`, 6, 1, 4, 1},
		{"string counters used as text", `, "outbytes_total": "77", "inbytes_total": 1, "outpkts_delta": "5", "inpkts_delta": 1`, 5, 77, 1, 1},
		{"float bytes are not integers", `, "outbytes_total": 3000.0, "inbytes_total": 1, "outpkts_delta": 1, "inpkts_delta": 1`, 1, 0, 1, 1},
		{"zero values count as present", `, "outbytes_total": 0, "inbytes_total": 0, "outpkts_delta": 0, "inpkts_delta": 0`, 0, 0, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := one(t, func() flow.Sample { s, _ := read(t, counterRecord(c.counters)); return s }())
			if f.SrcPkts != c.outP || f.SrcBytes != c.outB || f.DstPkts != c.inP || f.DstBytes != c.inB {
				t.Errorf("got %d/%d %d/%d, want %d/%d %d/%d", f.SrcPkts, f.SrcBytes, f.DstPkts, f.DstBytes,
					c.outP, c.outB, c.inP, c.inB)
			}
		})
	}
	for name, counters := range map[string]string{
		"no bytes":             `, "outpkts_delta": 1, "inpkts_delta": 1`,
		"no inbytes":           `, "outbytes_total": 1, "outpkts_delta": 1, "inpkts_delta": 1`,
		"string in arithmetic": `, "totalbytes": "500", "inbytes_total": 200, "outpkts_delta": 1, "inpkts_delta": 1`,
		"null in arithmetic":   `, "outbytes_total": null, "inbytes_total": 1, "totalpackets": 0`,
		"huge float":           `, "outbytes_total": 1e400, "inbytes_total": 1, "totalpackets": 0`,
		"missing srcip":        `, "srcip": null`, // null is a value: kept? see below
	} {
		if name == "missing srcip" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if s, _ := read(t, counterRecord(counters)); len(s.Flows) != 0 {
				t.Errorf("kept: %+v", s.Flows)
			}
		})
	}
	t.Run("required fields", func(t *testing.T) {
		for _, field := range []string{`"srcip": "10.0.0.1", `, `"srcport": 50000, `, `"dstip": "93.184.216.34", `,
			`"dstport": 443, `, `"timestamp": 1656517273742, `} {
			if s, _ := read(t, strings.Replace(base(""), field, "", 1)); len(s.Flows) != 0 {
				t.Errorf("without %s: kept", field)
			}
		}
	})
	t.Run("packet counts that are not integers abort", func(t *testing.T) {
		for _, v := range []string{"true", "2.0", `"two"`, "null"} {
			err := readErr(t, counterRecord(`, "outbytes_total": 1, "inbytes_total": 1, "outpkts_delta": `+v+`, "inpkts_delta": 1`))
			if !strings.HasPrefix(err.Error(), "test.if:1:") || !strings.Contains(err.Error(), "packet count") {
				t.Errorf("%s: error %q", v, err)
			}
		}
	})
}

// R-IF-4: milliseconds or seconds by the length of the timestamp text; duration only with a top-level
// member.
func TestTime(t *testing.T) {
	t.Run("testCase22 times", func(t *testing.T) {
		s, _ := read(t, "["+base("")+", "+strings.NewReplacer("50000", "50001", "1656517273742", "1656537951826",
			`"duration": 128`, `"duration": 43`).Replace(base(""))+"]")
		if s.Start != 1656517273.742 {
			t.Errorf("S = %v", s.Start)
		}
		flow.Finalize(&s, false)
		if s.Flows[0].Duration != 0.128 || s.Flows[1].RelativeStart != 20678.084 || s.Flows[1].Duration != 0.043 {
			t.Errorf("got %+v", s.Flows)
		}
	})
	t.Run("10 characters are seconds, durations too", func(t *testing.T) {
		f := one(t, func() flow.Sample {
			s, _ := read(t, strings.NewReplacer("1656517273742", "1656517273", `"duration": 128`, `"duration": 2.5`).Replace(base("")))
			return s
		}())
		if f.First != 1656517273 || f.Last != 1656517275.5 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("13 characters with a dot are seconds", func(t *testing.T) {
		s, _ := read(t, strings.NewReplacer("1656517273742", `"1656517273.74"`, `"duration": 128`, `"duration": "-"`).Replace(base("")))
		if f := one(t, s); f.First != 1656517273.74 || f.Last != 1656517273.74 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("other lengths abort (R-ERR-11)", func(t *testing.T) {
		err := readErr(t, strings.Replace(base(""), "1656517273742", "165651727374", 1))
		if !strings.Contains(err.Error(), "timestamp") {
			t.Errorf("error %v", err)
		}
		// ... but only for a record that would be kept.
		s, _ := read(t, strings.NewReplacer("1656517273742", "165651727374", `"_id": "x", `, "").Replace(base("")))
		if len(s.Flows) != 0 {
			t.Errorf("got %+v", s.Flows)
		}
	})
	t.Run("no top-level duration", func(t *testing.T) {
		s, _ := read(t, strings.Replace(base(""), `"duration": 128`, `"meta": {"duration": 128}`, 1))
		if f := one(t, s); f.Last != f.First {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("first(duration) may be nested before the top-level member", func(t *testing.T) {
		s, _ := read(t, strings.Replace(base(""), `"duration": 128`, `"meta": {"duration": 5}, "duration": 128`, 1))
		if f := one(t, s); f.Last != f.First+0.005 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("a top-level duration object without a duration inside skips the record", func(t *testing.T) {
		s, _ := read(t, strings.Replace(base(""), `"duration": 128`, `"duration": {"ms": 128}`, 1))
		if len(s.Flows) != 0 {
			t.Errorf("got %+v", s.Flows)
		}
	})
	t.Run("millisecond durations that are not numbers skip the record", func(t *testing.T) {
		s, _ := read(t, strings.Replace(base(""), `"duration": 128`, `"duration": "abc"`, 1))
		if len(s.Flows) != 0 {
			t.Errorf("got %+v", s.Flows)
		}
	})
	t.Run("second durations that are not numbers abort", func(t *testing.T) {
		readErr(t, strings.NewReplacer("1656517273742", "1656517273", `"duration": 128`, `"duration": "abc"`).Replace(base("")))
		readErr(t, strings.NewReplacer("1656517273742", "1656517273", `"duration": 128`, `"duration": null`).Replace(base("")))
	})
	t.Run("S is the smallest kept time", func(t *testing.T) {
		s, _ := read(t, base("")+"\n"+strings.NewReplacer("50000", "1", "1656517273742", "1656517000000").Replace(base(""))+
			"\n"+strings.NewReplacer("50000", "2", "1656517273742", "1656516000000", `"_id": "x", `, "").Replace(base("")))
		if s.Start != 1656517000 {
			t.Errorf("S = %v", s.Start)
		}
	})
}

// R-IF-5: grouping, creation order, sums, protocol, no direction logic.
func TestFlows(t *testing.T) {
	t.Run("testCase22 first record", func(t *testing.T) {
		s, _ := read(t, `[{"srcip": "172.18.40.120","dstport": 80,"dstip": "142.251.40.65","outbytes_total": 0,`+
			`"appid_name": "HTTP-4","dstip_host": "ci3.googleusercontent.com","inpkts_delta": 43,"duration": 128,`+
			`"outpkts_delta": 0,"timestamp": 1656517273742,"inbytes_total": 32165,"proto_name": "tcp","srcport": 55504,"_id": "8a0g"}]`)
		f := one(t, s)
		if f.SrcPkts != 0 || f.SrcBytes != 0 || f.DstPkts != 43 || f.DstBytes != 32165 || f.Protocol != flow.ProtoTCP ||
			f.Name != "ci3.googleusercontent.com" || f.NameSource != "" || f.Identifier != "" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("groups", func(t *testing.T) {
		a := base(`, "dstip_host": "first.example"`)
		b := strings.NewReplacer("1656517273742", "1656517272742", `"outpkts_delta": 1`, `"outpkts_delta": 5`).Replace(base(`, "dstip_host": "early.example"`))
		c := strings.NewReplacer("50000", "50001", "1656517273742", "1656517200000").Replace(base(""))
		d := strings.Replace(base(`, "dstip_host": ""`), "1656517273742", "1656517274742", 1)
		s, _ := read(t, "["+a+","+c+","+b+","+d+"]")
		if len(s.Flows) != 2 {
			t.Fatalf("%d flows", len(s.Flows))
		}
		f := s.Flows[0] // group of a, b, d (creation order: first appearance)
		tD, dur := 1656517274742/1000.0, 128/1000.0
		if f.SrcPort != "50000" || f.First != 1656517272.742 || f.SrcPkts != 7 || f.DstPkts != 6 ||
			f.SrcBytes != 300 || f.DstBytes != 600 || f.Last != tD+dur || f.Name != "" {
			t.Errorf("group 1: %+v", f)
		}
		if s.Flows[1].SrcPort != "50001" || s.Start != 1656517200 {
			t.Errorf("group 2: %+v, S %v", s.Flows[1], s.Start)
		}
	})
	t.Run("protocols", func(t *testing.T) {
		for proto, want := range map[string]flow.Protocol{`"TCP"`: flow.ProtoTCP, `"Udp"`: flow.ProtoUDP,
			`"icmp"`: flow.ProtoICMP, `"icmp6"`: flow.ProtoOther, `"gre"`: flow.ProtoOther} {
			s, _ := read(t, strings.Replace(base(""), `"tcp"`, proto, 1))
			f := one(t, s)
			if f.Protocol != want || (want == flow.ProtoICMP) != (f.SrcPort == "" && f.DstPort == "") {
				t.Errorf("%s: got %+v", proto, f)
			}
		}
		s, _ := read(t, strings.Replace(base(""), `"proto_name": "tcp", `, "", 1))
		if f := one(t, s); f.Protocol != flow.ProtoOther || f.SrcPort != "50000" {
			t.Errorf("no proto_name: %+v", f)
		}
		// proto_name that is not a string: the reference's .lower() fails and the record is skipped.
		s, _ = read(t, strings.Replace(base(""), `"tcp"`, "6", 1))
		if len(s.Flows) != 0 {
			t.Errorf("numeric proto_name kept: %+v", s.Flows)
		}
	})
	t.Run("ICMP records share the ICMP key", func(t *testing.T) {
		a := strings.Replace(base(""), `"tcp"`, `"icmp"`, 1)
		b := strings.NewReplacer(`"tcp"`, `"icmp"`, "50000", "8", "443", "0").Replace(base(""))
		s, _ := read(t, "["+a+","+b+"]")
		if f := one(t, s); f.SrcPkts != 2 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("no direction logic", func(t *testing.T) {
		s, _ := read(t, strings.NewReplacer(`"10.0.0.1"`, `"93.184.216.34"`, `"dstip": "93.184.216.34"`, `"dstip": "10.0.0.1"`).Replace(base("")))
		if f := one(t, s); f.SrcAddr != "93.184.216.34" || f.DstAddr != "10.0.0.1" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("values become Python text", func(t *testing.T) {
		s, _ := read(t, strings.NewReplacer(`"srcport": 50000`, `"srcport": 5e4`, `"dstport": 443`, `"dstport": -0`).Replace(base("")))
		if f := one(t, s); f.SrcPort != "50000.0" || f.DstPort != "0" {
			t.Errorf("got %+v", f)
		}
	})
}

// R-IF-6: session names; null becomes "None", "" means no name.
func TestSessionNames(t *testing.T) {
	s, _ := read(t, "["+strings.Replace(base(`, "dstip_host": null`), `"tcp"`, `"icmp"`, 1)+","+
		strings.Replace(base(`, "dstip_host": ""`), "50000", "50001", 1)+"]")
	flow.Finalize(&s, false)
	flow.Name(s.Flows, nil, func(string) bool { return true }, nil)
	if s.Flows[0].Name != "None" || s.Flows[0].NameSource != flow.SourceSession {
		t.Errorf("null host: %+v", s.Flows[0])
	}
	if s.Flows[1].Name != "93.184.216.34" || s.Flows[1].NameSource != flow.SourceOriginal {
		t.Errorf("empty host: %+v", s.Flows[1])
	}
}

func dnsLine(ts, meta string) string {
	return `{"appid_name": "dns", "timestamp": ` + ts + `, "srcport": 5353, "metadata": ` + meta + `}`
}

// R-IF-8: DNS records inside the log.
func TestDNS(t *testing.T) {
	answers := func(a *flow.AnswerTable) []string {
		var out []string
		if a != nil {
			a.Each(func(n string, x flow.Answer) { out = append(out, n+"="+x.Answer) })
		}
		return out
	}
	t.Run("testCase22 record", func(t *testing.T) {
		_, a := read(t, dnsLine("1656537951826", `{"request": {"transaction_id": 45138,"query": "presence.services.sfb.trafficmanager.net","query_type": "A"},`+
			`"response": {"answers": [{"section_type": "Answer","host": "a.example","host_type": "CNAME"},`+
			`{"ttl": 3,"host_addr": "52.112.95.92","host_type": "A"},{"name": "","host_type": "OPT"}],"response_time": 42,"reply_code": "No Error"}}`))
		if got := answers(a); len(got) != 1 || got[0] != "presence.services.sfb.trafficmanager.net.=52.112.95.92" {
			t.Errorf("answers %v", got)
		}
	})
	t.Run("several answers are normalised, others dropped", func(t *testing.T) {
		_, a := read(t, dnsLine("1656537951", `{"request": {"query": "x.example", "query_type": "AAAA"}, "response": {"answers": [`+
			`{"host_type": "AAAA", "host_addr": "2001:DB8::0:1"}, {"host_type": "A", "host_addr": "bad"}, {"host_type": "A", "host_addr": "1.2.3.4"}]}}`))
		if got := strings.Join(answers(a), " "); got != "x.example.=2001:db8::1 x.example.=1.2.3.4" {
			t.Errorf("answers %v", got)
		}
	})
	t.Run("a single answer is kept as text", func(t *testing.T) {
		_, a := read(t, dnsLine("1656537951", `{"request": {"query": "x", "query_type": "A"}, "response": {"answers": [{"host_type": "A", "host_addr": "not-an-ip"}]}}`))
		if got := strings.Join(answers(a), " "); got != "x.=not-an-ip" {
			t.Errorf("answers %v", got)
		}
		_, a = read(t, dnsLine("1656537951", `{"request": {"query": "x", "query_type": "A"}, "response": {"answers": 5}}`))
		if got := strings.Join(answers(a), " "); got != "x.=-" {
			t.Errorf("answers %v", got)
		}
	})
	t.Run("which records count", func(t *testing.T) {
		for meta, used := range map[string]bool{
			`{"request": {"query": "x", "query_type": "MX"}, "response": {"reply_code": "No Error"}}`:                       true,
			`{"request": {"query": "x", "query_type": "MX"}, "response": {}}`:                                               false, // NOERROR never matches
			`{"request": {"query": "x", "query_type": "MX"}, "response": {"reply_code": "No Error", "response_time": 1}}`:   false,
			`{"request": {"query": "x", "query_type": "a"}, "response": {"reply_code": "NXDOMAIN", "response_time": 1}}`:    false,
			`{"request": {"query": "x", "query_type": "AAAA"}, "response": {"reply_code": "NXDOMAIN", "response_time": 1}}`: true,
			`{"request": {"query": "x", "query_type": ["A"]}, "response": {"reply_code": "NXDOMAIN"}}`:                      false,
			`{"request": {"query": "x"}, "response": []}`:                                                                   false,
			`{"request": {"query": "x", "query_type": "A"}, "response": "text"}`:                                            true,
			`{"request": {"query": "x", "query_type": "A"}, "response": "has answers inside"}`:                              false,
			`{"request": {"query": "x", "query_type": "A"}, "response": null}`:                                              false,
			`{"request": "x", "response": {}}`:                                                                              false,
			`{"request": {"query": "x", "query_type": "A"}, "response": {"answers": [{"host_type": ["A"]}]}}`:               false,
			`{"request": {"query": "x", "query_type": "A"}, "response": {"answers": ["no type", {"host_type": "MX"}]}}`:     true,
			`{"request": {"query": "x", "query_type": "A"}, "response": {"answers": [3]}}`:                                  false,
			`{"request": {"query": "x", "query_type": "A"}, "response": {"answers": ["host_type"]}}`:                        false,
			`{"request": {"query": "x", "query_type": "A"}}`:                                                                false,
		} {
			_, a := read(t, dnsLine("1656537951", meta))
			if (a != nil) != used {
				t.Errorf("%s: used=%v, want %v", meta, a != nil, used)
			}
		}
	})
	t.Run("metadata is the first top-level object", func(t *testing.T) {
		_, a := read(t, `{"appid_name": "DNS", "timestamp": 1656537951, "srcport": 1, "info": {"request": {"query": "first", "query_type": "A"}, "response": {}}, `+
			`"metadata": {"request": {"query": "second", "query_type": "A"}, "response": {}}}`)
		if got := strings.Join(answers(a), " "); got != "first.=-" {
			t.Errorf("answers %v", got)
		}
		_, a = read(t, `{"appid_name": "dns", "timestamp": 1656537951, "srcport": 1, "metadata": "flat", "info": {"request": {"query": "x", "query_type": "A"}, "response": {}}}`)
		if a != nil {
			t.Errorf("scalar metadata first: %v", answers(a))
		}
	})
	t.Run("query text is Python's str", func(t *testing.T) {
		_, a := read(t, dnsLine("1656537951", `{"request": {"query": {"a": [1, "b'c", null, true, 1.50]}, "query_type": "A"}, "response": {}}`))
		if got := strings.Join(answers(a), " "); got != `{'a': [1, "b'c", None, True, 1.5]}.=-` {
			t.Errorf("answers %v", got)
		}
	})
	t.Run("times", func(t *testing.T) {
		var at []float64
		_, a := read(t, dnsLine("1656537951826", `{"request": {"query": "x", "query_type": "A"}, "response": {}}`)+"\n"+
			dnsLine(`"1656537951.82"`, `{"request": {"query": "y", "query_type": "A"}, "response": {}}`)+"\n"+
			dnsLine("123", `{"request": {"query": "z", "query_type": "A"}, "response": {}}`))
		a.Each(func(_ string, x flow.Answer) { at = append(at, x.Time) })
		if len(at) != 2 || at[0] != 1656537951.826 || at[1] != 1656537951.82 {
			t.Errorf("times %v", at)
		}
	})
	t.Run("appid_name that is not a string aborts", func(t *testing.T) {
		err := readErr(t, base("")+"\n"+base(`, "appid_name": 53`)+"\n")
		if !strings.HasPrefix(err.Error(), "test.if:2:") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("a DNS answer names a later flow", func(t *testing.T) {
		s, a := read(t, dnsLine("1656517270000", `{"request": {"query": "dns.google", "query_type": "A"}, "response": {"answers": [{"host_type": "A", "host_addr": "8.8.4.4"}]}}`)+"\n"+
			strings.Replace(base(""), "93.184.216.34", "8.8.4.4", 1))
		flow.Finalize(&s, false)
		flow.Name(s.Flows, a, func(x string) bool { return x == "8.8.4.4" }, nil)
		if f := one(t, s); f.Name != "dns.google" || f.NameSource != flow.SourcePassive {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("a DNS record is also a flow", func(t *testing.T) {
		s, a := read(t, base(`, "appid_name": "dns", "metadata": {"request": {"query": "q", "query_type": "A"}, "response": {}}`))
		if len(s.Flows) != 1 || a == nil {
			t.Errorf("flows %+v answers %v", s.Flows, answers(a))
		}
	})
}

// Python's str() of decoded values ("py-text").
func TestPyText(t *testing.T) {
	for in, want := range map[string]string{
		`443`: "443", `-0`: "0", `443.0`: "443.0", `1e2`: "100.0", `0.055490970611572269`: "0.055490970611572266", // CPython 3.11 (the spec's example says ...227)
		`1e400`: "inf", `true`: "True", `false`: "False", `null`: "None", `"a b"`: "a b",
		`[1, "x", {"k": "it's"}]`:                          `[1, 'x', {'k': "it's"}]`,
		`["a\"b'c", "\\", "\n\t\u0001\u00e9\u00a0\u2028"]`: `['a"b\'c', '\\', '\n\t\x01é\xa0\u2028']`,
		`{"a": 1, "a": 2, "b": -0.0}`:                      `{'a': 2, 'b': -0.0}`,
	} {
		v, err := decodeLine([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := pyText(&v); got != want {
			t.Errorf("str(%s) = %s, want %s", in, got, want)
		}
	}
}
