package zeek

import (
	"io"
	"strings"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/internal/pynum"
	"github.com/flowfleet/flowfleet/pkg/internal/pytext"
)

// dnsRecord is one dns.log record as text (R-ZDNS-1).
type dnsRecord struct {
	ts                               float64
	origP, rtt, query, qclass, qtype string
	rcode                            string
	answers                          string
}

// readDNS files the dns.log's answers into table (R-ZDNS-1, R-ZDNS-2).
func readDNS(r io.Reader, name string, jsonMode bool, table *flow.AnswerTable) error {
	add := func(d dnsRecord) {
		if !((d.qclass == "1" && (d.qtype == "1" || d.qtype == "28")) || (d.rtt == "-" && d.rcode == "NOERROR")) {
			return
		}
		n := d.query + "."
		table.Register(n)
		for _, a := range strings.Split(d.answers, ",") {
			if ip, ok := flow.ParseAddr(a); ok {
				table.Add(n, d.ts, flow.AddrText(ip))
			}
		}
	}
	if jsonMode {
		return jsonLines(r, name, func(_ int, o map[string]any) {
			ts, get, ok := jsonFields(o, "ts", "id.orig_p", "query")
			if !ok {
				return
			}
			ans := "-"
			if arr, ok := o["answers"].([]any); ok {
				parts := make([]string, len(arr))
				for i, v := range arr {
					parts[i] = pynum.Text(v)
				}
				ans = strings.Join(parts, ",")
			}
			add(dnsRecord{ts: ts, origP: get("id.orig_p", ""), rtt: get("rtt", "-"), query: get("query", ""),
				qclass: get("qclass", "-"), qtype: get("qtype", "-"), rcode: get("rcode_name", "NOERROR"), answers: ans})
		})
	}
	return lines(r, func(_ int, line string) error {
		if strings.HasPrefix(line, "#") {
			return nil
		}
		f := strings.Split(pyStrip(line), "\t")
		if len(f) < 22 {
			return nil
		}
		ts, ok := pytext.Float(f[0])
		if !ok {
			return nil
		}
		add(dnsRecord{ts: ts, origP: f[3], rtt: f[8], query: f[9], qclass: f[10], qtype: f[12], rcode: f[15], answers: f[21]})
		return nil
	})
}
