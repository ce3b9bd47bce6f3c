package zeek

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// conn is one conn.log record for the tests; empty fields take defaults.
type conn struct {
	ts, uid, oh, op, rh, rp, proto, service, dur, ob, rb, hist, opk, oib, rpk, rib string
}

func (c conn) fields() []string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return []string{def(c.ts, "100.0"), def(c.uid, "Cuid"), def(c.oh, "192.168.1.2"), def(c.op, "50000"),
		def(c.rh, "93.184.216.34"), def(c.rp, "443"), def(c.proto, "tcp"), def(c.service, "-"), def(c.dur, "-"),
		def(c.ob, "-"), def(c.rb, "-"), "SF", "-", "-", "0", def(c.hist, "-"), def(c.opk, "0"), def(c.oib, "0"),
		def(c.rpk, "0"), def(c.rib, "0"), "-"}
}

// tsv writes records as a Zeek TSV conn.log with headers.
func tsv(recs ...conn) string {
	var b strings.Builder
	b.WriteString("#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n")
	for _, r := range recs {
		b.WriteString(strings.Join(r.fields(), "\t"))
		b.WriteByte('\n')
	}
	return b.String()
}

// read parses a conn.log (and dns.log) and finishes the sample as convert does (R-FLOW-2/3, R-ORD-1).
func read(t *testing.T, connLog, dnsLog string) (flow.Sample, *flow.AnswerTable, error) {
	t.Helper()
	var dns *strings.Reader
	if dnsLog != "" {
		dns = strings.NewReader(dnsLog)
	}
	var s flow.Sample
	var ans *flow.AnswerTable
	var err error
	if dns != nil {
		s, ans, err = Read(strings.NewReader(connLog), "conn.log", dns, "dns.log")
	} else {
		s, ans, err = Read(strings.NewReader(connLog), "conn.log", nil, "")
	}
	if err == nil {
		flow.Finalize(&s, false)
	}
	return s, ans, err
}

func mustRead(t *testing.T, connLog, dnsLog string) (flow.Sample, *flow.AnswerTable) {
	t.Helper()
	s, a, err := read(t, connLog, dnsLog)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return s, a
}

type counts struct{ sp, sb, dp, db int64 }

func countsOf(f flow.Flow) counts { return counts{f.SrcPkts, f.SrcBytes, f.DstPkts, f.DstBytes} }

// R-ZEEK-2: '#' lines skipped (header optional), lines with fewer than 21 fields, blank lines and lines
// whose ts is not a number are skipped; extra fields are ignored; surrounding whitespace is stripped.
func TestRZEEK2TSVLines(t *testing.T) {
	good := conn{ts: "1618432252.101913", uid: "Cf5EIoohI0s0bcs6d", oh: "192.168.86.245", op: "58402", rh: "31.13.71.36",
		rp: "443", dur: "24.621645", ob: "1", rb: "39", hist: "AadfR", opk: "4", rpk: "3"}
	short := strings.Join(good.fields()[:20], "\t")
	badTS := strings.Join(append([]string{"x"}, good.fields()[1:]...), "\t")
	extra := strings.Join(append(conn{ts: "1618432253.0", uid: "C2", op: "50001"}.fields(), "x", "y"), "\t")
	log := short + "\n\n" + badTS + "\n#close\n  " + strings.Join(good.fields(), "\t") + "  \r\n" + extra + "\n"
	s, _ := mustRead(t, log, "")
	if len(s.Flows) != 2 {
		t.Fatalf("flows %+v", s.Flows)
	}
	f := s.Flows[0]
	if f.Identifier != "Cf5EIoohI0s0bcs6d" || countsOf(f) != (counts{4, 1, 3, 0}) || f.Duration != 24.621645 || f.RelativeStart != 0 {
		t.Errorf("testCase10-like record: %+v", f)
	}
	if s.Start != 1618432252.101913 {
		t.Errorf("S = %v", s.Start)
	}
}

// R-ZEEK-1: an empty conn.log is refused; R-ERR-2: headers only → no flows, NoStart.
func TestRZEEK1EmptyAndHeadersOnly(t *testing.T) {
	if _, _, err := read(t, "", ""); err == nil {
		t.Error("empty conn.log accepted")
	}
	s, _ := mustRead(t, tsv(), "")
	if len(s.Flows) != 0 || s.Start != flow.NoStart {
		t.Errorf("headers only: %+v", s)
	}
}

// R-ZEEK-3: JSON: each line one complete JSON value; a blank line aborts with an error naming file:line.
func TestRZEEK3JSONBlankLine(t *testing.T) {
	log := `{"ts":1.0,"uid":"C1","id.orig_h":"192.168.1.2","id.orig_p":5,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp"}` + "\n\n"
	_, _, err := read(t, log, "")
	if err == nil || !strings.Contains(err.Error(), "conn.log:2") {
		t.Errorf("blank line: %v", err)
	}
	_, _, err = read(t, "[{\"ts\":1.0,\n\"uid\":\"x\"}]\n", "")
	if err == nil || !strings.Contains(err.Error(), "conn.log:1") {
		t.Errorf("pretty-printed array: %v", err)
	}
	_, _, err = read(t, `{"ts":1.0} {"ts":2.0}`+"\n", "")
	if err == nil {
		t.Error("two values on one line accepted")
	}
}

// R-ZEEK-3: objects append, an array line replaces the records so far, any other value drops them all;
// records missing a required member are skipped; defaults; values become py-text.
func TestRZEEK3JSONRecords(t *testing.T) {
	rec := func(uid string, port int) string {
		b, _ := json.Marshal(map[string]any{"ts": 1.5, "uid": uid, "id.orig_h": "192.168.1.2", "id.orig_p": port,
			"id.resp_h": "8.8.8.8", "id.resp_p": 53, "proto": "udp", "service": "dns", "orig_bytes": 37, "resp_bytes": 76,
			"orig_pkts": 1, "resp_pkts": 1, "duration": 0.023223})
		return string(b)
	}
	missing := `{"ts":1.0,"id.orig_h":"192.168.1.2","id.orig_p":5,"id.resp_h":"8.8.8.8","id.resp_p":53}`
	s, _ := mustRead(t, rec("C1", 1)+"\n"+missing+"\n"+rec("C2", 2)+"\n", "")
	if len(s.Flows) != 2 || s.Flows[0].Identifier != "C1" || s.Flows[1].Identifier != "C2" {
		t.Fatalf("objects: %+v", s.Flows)
	}
	f := s.Flows[0]
	if f.SrcPort != "1" || countsOf(f) != (counts{1, 37, 1, 76}) || f.Duration != 0.023223 || f.Protocol != flow.ProtoUDP {
		t.Errorf("record: %+v", f)
	}
	s, _ = mustRead(t, rec("C1", 1)+"\n["+rec("C3", 3)+","+rec("C4", 4)+"]\n"+rec("C5", 5)+"\n", "")
	if len(s.Flows) != 3 || s.Flows[0].Identifier != "C3" || s.Flows[2].Identifier != "C5" {
		t.Errorf("array replaces: %+v", s.Flows)
	}
	s, _ = mustRead(t, rec("C1", 1)+"\n42\n"+rec("C2", 2)+"\n", "")
	if len(s.Flows) != 0 {
		t.Errorf("a number line must drop every record: %+v", s.Flows)
	}
	// Defaults: no proto → "", no bytes/packets → 0, no duration → 0.0; ports as py-text.
	s, _ = mustRead(t, `{"ts":1617652276.543011,"uid":"Cd","id.orig_h":"0.0.0.0","id.orig_p":68,"id.resp_h":"255.255.255.255","id.resp_p":67.0,"service":"dhcp"}`+"\n", "")
	f = s.Flows[0]
	if f.Protocol != flow.ProtoOther || f.DstPort != "67.0" || countsOf(f) != (counts{0, 0, 0, 0}) || f.Duration != 0 {
		t.Errorf("defaults: %+v", f)
	}
}

// R-ZEEK-4: proto mapping; ICMP clears the ports (key in ICMP form), unknown protocols keep them.
func TestRZEEK4Protocol(t *testing.T) {
	s, _ := mustRead(t, tsv(
		conn{proto: "ICMP", op: "8", rp: "0", uid: "C1"},
		conn{proto: "icmp", op: "0", rp: "0", uid: "C2", ts: "101.0"}, // same ICMP key: same group
		conn{proto: "sctp", op: "9", rp: "10", uid: "C3"},
		conn{proto: "UDP", uid: "C4"},
	), "")
	if len(s.Flows) != 3 {
		t.Fatalf("flows %+v", s.Flows)
	}
	if f := s.Flows[0]; f.Protocol != flow.ProtoICMP || f.SrcPort != "" || f.DstPort != "" || f.Identifier != "C1" {
		t.Errorf("icmp: %+v", f)
	}
	if f := s.Flows[1]; f.Protocol != flow.ProtoOther || f.SrcPort != "9" || f.DstPort != "10" {
		t.Errorf("sctp: %+v", f)
	}
	if f := s.Flows[2]; f.Protocol != flow.ProtoUDP {
		t.Errorf("udp: %+v", f)
	}
}

// R-ZEEK-6: groups by key in order of first appearance, records sorted by ts inside a group; packets
// summed; last = max(ts + duration).
func TestRZEEK6Grouping(t *testing.T) {
	s, _ := mustRead(t, tsv(
		conn{ts: "105.0", uid: "Ca", opk: "2", rpk: "1", dur: "1.0"},
		conn{ts: "103.0", uid: "Cb", op: "50001", opk: "1"},
		conn{ts: "104.0", uid: "Cc", opk: "3", rpk: "4", dur: "10.5"},
	), "")
	if len(s.Flows) != 2 {
		t.Fatalf("flows %+v", s.Flows)
	}
	// Group 1 (key of Ca/Cc) sorted by ts: Cc (104) creates the flow; relativeStart 104 − 103 = 1.
	f := s.Flows[1]
	if f.Identifier != "Cc" || f.SrcPkts != 5 || f.DstPkts != 5 || f.RelativeStart != 1 || f.Duration != 10.5 {
		t.Errorf("group: %+v", f)
	}
	if s.Flows[0].Identifier != "Cb" {
		t.Errorf("order: %+v", s.Flows)
	}
}

// R-ZEEK-7 (quirk): three swapped records (responder local, originator not) with ts 100.0/100.5/101.0 give
// one flow with the third record's packets, first, last and uid (relativeStart 1.0, duration 0.5), and
// bytes from all three.
func TestRZEEK7SwappedGroup(t *testing.T) {
	rec := func(ts, uid, opk, rpk, ob, rb string) conn {
		return conn{ts: ts, uid: uid, oh: "93.184.216.34", op: "443", rh: "192.168.1.5", rp: "50000",
			service: "http", dur: "0.5", ob: ob, rb: rb, opk: opk, rpk: rpk, hist: "ShADad"}
	}
	s, _ := mustRead(t, tsv(
		rec("100.0", "C1", "1", "2", "10", "100"),
		rec("100.5", "C2", "3", "4", "20", "200"),
		rec("101.0", "C3", "5", "6", "5", "50"),
	), "")
	if len(s.Flows) != 1 {
		t.Fatalf("flows %+v", s.Flows)
	}
	f := s.Flows[0]
	if f.SrcAddr != "192.168.1.5" || f.SrcPort != "50000" || f.DstAddr != "93.184.216.34" || f.DstPort != "443" {
		t.Errorf("swap: %+v", f)
	}
	// After the swap: orig_pkts = 6, resp_pkts = 5 (third record only); bytes: svS = max(100, 200, 50) =
	// 200, svD = max(10, 20, 5) = 20.
	if f.Identifier != "C3" || f.RelativeStart != 1 || f.Duration != 0.5 || countsOf(f) != (counts{6, 200, 5, 20}) {
		t.Errorf("swapped group: id %s rel %v dur %v %+v", f.Identifier, f.RelativeStart, f.Duration, countsOf(f))
	}
	if s.Start != 100 {
		t.Errorf("S %v", s.Start)
	}
}

// R-ZEEK-7: a swapped record replaces a flow stored under the swapped key by a separate group (keeping
// its position); a non-swapped group whose key an earlier swapped group stored aborts the conversion.
func TestRZEEK7Collisions(t *testing.T) {
	plain := conn{ts: "100.0", uid: "Cplain", oh: "192.168.1.5", op: "50000", rh: "93.184.216.34", rp: "443", opk: "7"}
	swapped := conn{ts: "101.0", uid: "Cswap", oh: "93.184.216.34", op: "443", rh: "192.168.1.5", rp: "50000", opk: "1", rpk: "2"}
	other := conn{ts: "102.0", uid: "Cother", op: "50009"}
	s, _ := mustRead(t, tsv(plain, other, swapped), "")
	if len(s.Flows) != 2 || s.Flows[0].Identifier != "Cswap" || s.Flows[0].SrcPkts != 2 || s.Flows[1].Identifier != "Cother" {
		t.Errorf("replacement: %+v", s.Flows)
	}
	_, _, err := read(t, tsv(swapped, plain), "")
	if err == nil || !strings.Contains(err.Error(), "R-ZEEK-7") {
		t.Errorf("abort: %v", err)
	}
}

// R-ERR-6: address text that is not an address aborts.
func TestRZEEKBadAddress(t *testing.T) {
	if _, _, err := read(t, tsv(conn{rh: "-"}), ""); err == nil {
		t.Error("responder '-' accepted")
	}
	if _, _, err := read(t, tsv(conn{rh: "fe80::1%eth0"}), ""); err == nil {
		t.Error("zone accepted")
	}
	// The originator is not parsed when the responder is not local (Python's "and").
	if _, _, err := read(t, tsv(conn{oh: "garbage", rh: "8.8.8.8"}), ""); err != nil {
		t.Errorf("originator checked: %v", err)
	}
}

// R-ZEEK-8: the history-driven byte rule, case by case.
func TestRZEEK8History(t *testing.T) {
	cases := []struct {
		name string
		recs []conn
		want counts
	}{
		{"S only", []conn{{hist: "S", ob: "10", rb: "20"}}, counts{0, 0, 0, 0}},
		{"AadfR (testCase10)", []conn{{hist: "AadfR", ob: "1", rb: "39"}}, counts{0, 1, 0, 0}},
		{"D, no bytes (testCase18)", []conn{{hist: "D"}}, counts{0, 0, 0, 0}},
		{"d and D", []conn{{hist: "ShADadFf", ob: "100", rb: "200"}}, counts{0, 100, 0, 200}},
		{"lower t counts both", []conn{{hist: "ShAt", ob: "100", rb: "200"}}, counts{0, 100, 0, 200}},
		{"upper T counts nothing", []conn{{hist: "ShAT", ob: "100", rb: "200"}}, counts{0, 0, 0, 0}},
		{"upper D only", []conn{{hist: "ShAD", ob: "100", rb: "200"}}, counts{0, 0, 0, 200}},
		{"no history", []conn{{hist: "-", ob: "5", rb: "6"}}, counts{0, 5, 0, 6}},
		{"orig_bytes -", []conn{{hist: "d", ob: "-", rb: "6"}}, counts{0, 0, 0, 0}},
		{"second record uses IP bytes", []conn{
			{ts: "1", hist: "ShADad", ob: "10", rb: "20", oib: "500", rib: "700"},
			{ts: "2", hist: "ShADad", ob: "11", rb: "21", oib: "600", rib: "650"}}, counts{0, 600, 0, 650}},
		{"S resets", []conn{
			{ts: "1", hist: "ShADad", ob: "10", rb: "20"},
			{ts: "2", hist: "S", ob: "11", rb: "21"}}, counts{0, 0, 0, 0}},
		{"service: first record", []conn{{service: "dns", ob: "37", rb: "76", hist: "Dd"}}, counts{0, 37, 0, 76}},
		{"service: reset while one side is 0", []conn{
			{ts: "1", service: "http", ob: "10", rb: "0"},
			{ts: "2", service: "http", ob: "3", rb: "7"}}, counts{0, 3, 0, 7}},
		{"service: max", []conn{
			{ts: "1", service: "http", ob: "10", rb: "5"},
			{ts: "2", service: "http", ob: "3", rb: "7"}}, counts{0, 10, 0, 7}},
		{"service: missing bytes leave 0 (testCase17)", []conn{{service: "dhcp"}}, counts{0, 0, 0, 0}},
		{"packets summed", []conn{{ts: "1", opk: "2", rpk: "3"}, {ts: "2", opk: "4", rpk: "5"}}, counts{6, 0, 8, 0}},
	}
	for _, c := range cases {
		s, _, err := read(t, tsv(c.recs...), "")
		if err != nil || len(s.Flows) != 1 {
			t.Errorf("%s: %v %+v", c.name, err, s.Flows)
			continue
		}
		if got := countsOf(s.Flows[0]); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	// A non-integer orig_bytes where it is needed aborts; non-integer packets abort.
	if _, _, err := read(t, tsv(conn{hist: "d", ob: "1.5"}), ""); err == nil {
		t.Error("orig_bytes 1.5 accepted")
	}
	if _, _, err := read(t, tsv(conn{opk: "x"}), ""); err == nil {
		t.Error("orig_pkts x accepted")
	}
}

// dnsTSV writes dns.log records: ts, orig_p, rtt, query, qclass, qtype, rcode, answers.
func dnsTSV(recs ...[8]string) string {
	var b strings.Builder
	b.WriteString("#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n")
	for _, r := range recs {
		f := []string{r[0], "Cdns", "192.168.1.2", r[1], "192.168.1.1", "53", "udp", "1", r[2], r[3], r[4], "C_INTERNET",
			r[5], "A", "0", r[6], "F", "F", "T", "T", "0", r[7], "60.0", "F"}
		b.WriteString(strings.Join(f, "\t"))
		b.WriteByte('\n')
	}
	return b.String()
}

func answersOf(a *flow.AnswerTable) string {
	if a == nil {
		return "<nil>"
	}
	var out []string
	a.Each(func(n string, x flow.Answer) { out = append(out, n+"="+x.Answer) })
	return strings.Join(out, " ")
}

// R-ZDNS-1, R-ZDNS-2: which dns.log records count, names as query + ".", answers that parse as addresses
// (normalised), CNAME names ignored.
func TestRZDNS(t *testing.T) {
	connLog := tsv(conn{})
	dns := dnsTSV(
		[8]string{"99.0", "5000", "0.01", "r3.o.lencr.org", "1", "28", "NOERROR", "o.lencr.edgesuite.net,a1887.dscq.akamai.net,2600:1403:9c00:0030:0000:0000:17c1:6a8e,::ffff:1.2.3.4"},
		[8]string{"99.5", "5001", "0.01", "mx.example", "1", "15", "NOERROR", "1.1.1.1"}, // MX with an rtt: unused
		[8]string{"99.6", "5002", "-", "norrt.example", "1", "15", "NOERROR", "2.2.2.2"}, // no rtt, NOERROR: used
		[8]string{"99.7", "5003", "-", "nx.example", "1", "15", "NXDOMAIN", "3.3.3.3"},   // unused
		[8]string{"99.8", "5004", "0.01", "Upper.Example", "1", "1", "NOERROR", "-"},     // registered only
		[8]string{"x", "5005", "0.01", "bad.ts", "1", "1", "NOERROR", "4.4.4.4"},         // skipped
	)
	_, ans := mustRead(t, connLog, dns)
	want := "r3.o.lencr.org.=2600:1403:9c00:30::17c1:6a8e r3.o.lencr.org.=::ffff:102:304 norrt.example.=2.2.2.2"
	if got := answersOf(ans); got != want {
		t.Errorf("answers\n got  %s\n want %s", got, want)
	}
	if ans.Len() != 3 {
		t.Errorf("%d names registered, want 3", ans.Len())
	}
}

// R-ZDNS-1: the dns.log is read only when there is at least one flow.
func TestRZDNSOnlyWithFlows(t *testing.T) {
	_, ans := mustRead(t, tsv(), dnsTSV([8]string{"1", "1", "0.1", "a.example", "1", "1", "NOERROR", "1.1.1.1"}))
	if ans != nil && ans.Len() != 0 {
		t.Errorf("answers read without flows: %s", answersOf(ans))
	}
}

// R-ZEEK-1 (quirk): the dns.log is parsed in the conn.log's syntax: TSV conn + JSON dns → no names;
// JSON conn + TSV dns → the conversion aborts.
func TestRZEEK1DNSSyntaxFollowsConn(t *testing.T) {
	jsonDNS := `{"ts":99.0,"id.orig_p":5000,"query":"a.example","qclass":1,"qtype":1,"rtt":0.01,"answers":["93.184.216.34"]}` + "\n"
	_, ans := mustRead(t, tsv(conn{}), jsonDNS)
	if got := answersOf(ans); got != "" {
		t.Errorf("TSV conn + JSON dns: %s", got)
	}
	jsonConn := `{"ts":100.0,"uid":"C1","id.orig_h":"192.168.1.2","id.orig_p":50000,"id.resp_h":"93.184.216.34","id.resp_p":443,"proto":"tcp"}` + "\n"
	_, ans = mustRead(t, jsonConn, jsonDNS)
	if got := answersOf(ans); got != "a.example.=93.184.216.34" {
		t.Errorf("JSON conn + JSON dns: %s", got)
	}
	_, _, err := read(t, jsonConn, dnsTSV([8]string{"1", "1", "0.1", "a.example", "1", "1", "NOERROR", "1.1.1.1"}))
	if err == nil || !strings.Contains(err.Error(), "dns.log") {
		t.Errorf("JSON conn + TSV dns: %v", err)
	}
}

// R-ZDNS-1 (JSON): defaults and py-text; answers joined with "," (non-arrays give "-").
func TestRZDNSJSON(t *testing.T) {
	jsonConn := `{"ts":100.0,"uid":"C1","id.orig_h":"192.168.1.2","id.orig_p":50000,"id.resp_h":"93.184.216.34","id.resp_p":443,"proto":"tcp"}` + "\n"
	dns := `[{"ts":99.0,"id.orig_p":5000,"query":"b.example","answers":["b.cdn.example","5.6.7.8"]},` +
		`{"ts":99.1,"id.orig_p":5000,"query":"c.example","qclass":1,"qtype":28,"rtt":0.1,"answers":"9.9.9.9"},` +
		`{"ts":99.2,"query":"skipped.example"}]` + "\n"
	_, ans := mustRead(t, jsonConn, dns)
	if got := answersOf(ans); got != "b.example.=5.6.7.8" || ans.Len() != 2 {
		t.Errorf("answers %q, %d names", got, ans.Len())
	}
}
