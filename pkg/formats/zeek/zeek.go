// Package zeek reads Zeek conn.log and dns.log files, TSV (with or without '#' headers) or JSON (one
// record a line, or arrays), and builds flows as the reference does (section 6 of docs/bayseflow.md: R-ZEEK-1 …
// R-ZEEK-9, R-ZDNS-1, R-ZDNS-2).
package zeek

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/flowfleet/flowfleet/internal/pynum"
	"github.com/flowfleet/flowfleet/internal/pytext"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// MaxLine bounds one line of a log (a JSON array on one line can be large).
const MaxLine = 256 << 20

// ErrEmpty reports an empty conn.log, which the reference refuses (R-ZEEK-1).
var ErrEmpty = errors.New("the conn.log is empty")

// record is one conn.log record, every value as text (R-ZEEK-2, R-ZEEK-3).
type record struct {
	line                       int
	ts                         float64
	uid                        string
	origH, origP, respH, respP string
	proto, service, duration   string
	origBytes, respBytes       string
	history                    string
	origPkts, origIPBytes      string
	respPkts, respIPBytes      string
}

// IsJSON reports whether a conn.log is JSON (R-ZEEK-1): its first non-blank byte opens an object or array.
func IsJSON(head []byte) bool {
	t := bytes.TrimLeft(head, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// Read parses a conn.log and, when dns is not nil, its dns.log; it returns the flows in creation order
// with S, and the answer table. The dns.log is read in the conn.log's syntax whatever it contains
// (R-ZEEK-1) and only when there is at least one flow (R-ZDNS-1).
func Read(conn io.Reader, connName string, dns io.Reader, dnsName string) (flow.Sample, *flow.AnswerTable, error) {
	br := bufio.NewReaderSize(conn, 1<<20)
	head, _ := br.Peek(4096)
	if len(bytes.TrimSpace(head)) == 0 && len(head) < 4096 {
		return flow.Sample{}, nil, fmt.Errorf("%s: %w", connName, ErrEmpty)
	}
	jsonMode := IsJSON(head)
	var recs []record
	var err error
	if jsonMode {
		recs, err = readJSONConn(br, connName)
	} else {
		recs, err = readTSVConn(br)
	}
	if err != nil {
		return flow.Sample{}, nil, err
	}
	s, err := build(recs, connName)
	if err != nil {
		return flow.Sample{}, nil, err
	}
	var answers *flow.AnswerTable
	if dns != nil && len(s.Flows) > 0 {
		answers = flow.NewAnswerTable()
		if err := readDNS(dns, dnsName, jsonMode, answers); err != nil {
			return flow.Sample{}, nil, err
		}
	}
	return s, answers, nil
}

// pyStrip removes what Python's str.strip() removes from ASCII text.
func pyStrip(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f) }
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// lines calls fn for every line (without its end of line), numbered from 1.
func lines(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("after line %d: %w", n, err)
	}
	return nil
}

func readTSVConn(r io.Reader) ([]record, error) {
	var recs []record
	err := lines(r, func(n int, line string) error {
		if strings.HasPrefix(line, "#") {
			return nil
		}
		f := strings.Split(pyStrip(line), "\t")
		if len(f) < 21 {
			return nil
		}
		ts, ok := pytext.Float(f[0]) // Python's float(): R-ZEEK-2 skips a line whose ts it refuses
		if !ok {
			return nil
		}
		recs = append(recs, record{line: n, ts: ts, uid: f[1], origH: f[2], origP: f[3], respH: f[4], respP: f[5],
			proto: f[6], service: f[7], duration: f[8], origBytes: f[9], respBytes: f[10], history: f[15],
			origPkts: f[16], origIPBytes: f[17], respPkts: f[18], respIPBytes: f[19]})
		return nil
	})
	return recs, err
}

// errStopReading ends a JSON log's reading early without an error (R-ZEEK-3).
var errStopReading = errors.New("stop reading")

// jsonLines applies the reference's JSON line rules (R-ZEEK-3): every line one complete JSON value; an
// array replaces the records so far, an object is appended, any other value drops every record.
func jsonLines(r io.Reader, name string, fn func(line int, obj map[string]any)) error {
	type item struct {
		line int
		obj  map[string]any
	}
	var items []item
	dropAll := false
	err := lines(r, func(n int, line string) error {
		v, err := decodeLine(line)
		if err != nil {
			return fmt.Errorf("%s:%d: not one complete JSON value: %w", name, n, err)
		}
		switch x := v.(type) {
		case []any:
			items = items[:0]
			for _, e := range x {
				if o, ok := e.(map[string]any); ok {
					items = append(items, item{n, o})
				} else {
					items = append(items, item{n, nil})
				}
			}
		case map[string]any:
			items = append(items, item{n, x})
		default:
			// Any other value makes the reference drop every record and stop reading: later lines,
			// even ones that would abort, are never read.
			dropAll = true
			return errStopReading
		}
		return nil
	})
	if errors.Is(err, errStopReading) {
		err = nil
	}
	if err != nil {
		if !strings.HasPrefix(err.Error(), name) {
			err = fmt.Errorf("%s: %w", name, err)
		}
		return err
	}
	if dropAll {
		return nil
	}
	for _, it := range items {
		if it.obj != nil {
			fn(it.line, it.obj)
		}
	}
	return nil
}

func decodeLine(line string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("extra data after the value")
	}
	return v, nil
}

func readJSONConn(r io.Reader, name string) ([]record, error) {
	var recs []record
	err := jsonLines(r, name, func(n int, o map[string]any) {
		for _, k := range []string{"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"} {
			if _, ok := o[k]; !ok {
				return
			}
		}
		ts, ok := pytext.Float(pynum.Text(o["ts"]))
		if !ok {
			return
		}
		get := func(k, def string) string {
			if v, ok := o[k]; ok {
				return pynum.Text(v)
			}
			return def
		}
		recs = append(recs, record{line: n, ts: ts, uid: get("uid", ""), origH: get("id.orig_h", ""),
			origP: get("id.orig_p", ""), respH: get("id.resp_h", ""), respP: get("id.resp_p", ""),
			proto: get("proto", "-"), service: get("service", "-"), duration: get("duration", "-"),
			origBytes: get("orig_bytes", "-"), respBytes: get("resp_bytes", "-"), history: get("history", "-"),
			origPkts: get("orig_pkts", "0"), origIPBytes: get("orig_ip_bytes", "0"),
			respPkts: get("resp_pkts", "0"), respIPBytes: get("resp_ip_bytes", "0")})
	})
	return recs, err
}
