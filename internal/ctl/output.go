package ctl

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

// -o/--output is the output format of every listing and watch (files and folders take other flags):
//
//	table  aligned columns for people (the default)
//	wide   the table with every column
//	json   one JSON array (a watch, which never ends, writes JSON lines)
//	jsonl  one JSON object a line
//	csv    a header line, then every column of each row (RFC 4180)
//
// JSON has numbers as numbers, enum values as the words the flags take ("written", "tcp"), every field
// present even when zero, and times as RFC 3339 with the epoch seconds beside them where useful.
const (
	outTable = "table"
	outWide  = "wide"
	outJSON  = "json"
	outJSONL = "jsonl"
	outCSV   = "csv"
)

var outputFormats = []string{outTable, outWide, outJSON, outJSONL, outCSV}

// addOutputFlag adds -o/--output (and --utc, which the tables' times follow) to a listing command.
func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", outTable, "output format: "+strings.Join(outputFormats, ", "))
	cmd.Flags().Bool("utc", false, "show times in UTC instead of the local time zone (tables)")
}

// outputFormat returns the -o value, checked.
func outputFormat(vp *viper.Viper) (string, error) {
	o := vp.GetString("output")
	for _, f := range outputFormats {
		if o == f {
			return o, nil
		}
	}
	return "", fmt.Errorf("--output %q: want one of %s", o, strings.Join(outputFormats, ", "))
}

// column is one column of a listing: its header, whether only -o wide (and csv) shows it, and its text.
type column[T any] struct {
	head string
	wide bool
	cell func(T) string
}

// rowPrinter prints rows of T in one output format, a row at a time (so a watch can use it), with the
// header first where the format has one.
type rowPrinter[T any] struct {
	w       io.Writer
	format  string
	cols    []column[T]
	toJSON  func(T) any
	tw      *tabwriter.Writer
	cw      *csv.Writer
	started bool
	stream  bool  // a watch: json becomes JSON lines, tables and CSV are written a row at a time
	widths  []int // a watch's table: the widest value of each column so far
}

func newRowPrinter[T any](w io.Writer, format string, cols []column[T], toJSON func(T) any) *rowPrinter[T] {
	return &rowPrinter[T]{w: w, format: format, cols: cols, toJSON: toJSON}
}

func (p *rowPrinter[T]) visible() []column[T] {
	if p.format == outWide || p.format == outCSV {
		return p.cols
	}
	var v []column[T]
	for _, c := range p.cols {
		if !c.wide {
			v = append(v, c)
		}
	}
	return v
}

// print writes one row.
func (p *rowPrinter[T]) print(row T) error {
	switch p.format {
	case outJSON, outJSONL:
		if p.format == outJSON && !p.stream {
			return p.jsonArrayItem(row)
		}
		return json.NewEncoder(p.w).Encode(p.toJSON(row))
	case outCSV:
		if err := p.csvStart(); err != nil {
			return err
		}
		cells := make([]string, len(p.cols))
		for i, c := range p.cols {
			cells[i] = c.cell(row)
		}
		if err := p.cw.Write(cells); err != nil {
			return err
		}
		if p.stream {
			p.cw.Flush()
		}
		return p.cw.Error()
	}
	cols := p.visible()
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = c.cell(row)
	}
	if p.stream {
		return p.streamLine(cols, cells)
	}
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		p.writeHeader(cols)
	}
	fmt.Fprintln(p.tw, strings.Join(cells, "\t"))
	return nil
}

// streamLine writes one table row of a watch at once: columns are padded to the widest value seen so
// far (the header and the first row's at first), since a stream cannot wait to align its rows as
// tabwriter does.
func (p *rowPrinter[T]) streamLine(cols []column[T], cells []string) error {
	if p.widths == nil { // the header, aligned with the first row
		p.widths = make([]int, len(cols))
		heads := make([]string, len(cols))
		for i, c := range cols {
			heads[i] = c.head
			p.widths[i] = len(cells[i])
		}
		if err := p.padded(heads); err != nil {
			return err
		}
	}
	return p.padded(cells)
}

func (p *rowPrinter[T]) padded(cells []string) error {
	var b strings.Builder
	for i, c := range cells {
		p.widths[i] = max(p.widths[i], len(c))
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", p.widths[i]-len(c)+2))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}

// csvStart writes the CSV header line once: every column, named as csvHead names it.
func (p *rowPrinter[T]) csvStart() error {
	if p.cw != nil {
		return nil
	}
	p.cw = csv.NewWriter(p.w)
	heads := make([]string, len(p.cols))
	for i, c := range p.cols {
		heads[i] = csvHead(c.head)
	}
	return p.cw.Write(heads)
}

func (p *rowPrinter[T]) writeHeader(cols []column[T]) {
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	fmt.Fprintln(p.tw, strings.Join(heads, "\t"))
}

func (p *rowPrinter[T]) jsonArrayItem(row T) error {
	b, err := json.MarshalIndent(p.toJSON(row), "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if !p.started {
		sep, p.started = "[\n  ", true
	}
	_, err = fmt.Fprintf(p.w, "%s%s", sep, b)
	return err
}

// close ends the output: the JSON array's bracket (an empty array when there were no rows), the table's
// header even with no rows, and the buffered lines.
func (p *rowPrinter[T]) close() error {
	switch p.format {
	case outJSON:
		if p.stream {
			return nil
		}
		if !p.started {
			_, err := io.WriteString(p.w, "[]\n")
			return err
		}
		_, err := io.WriteString(p.w, "\n]\n")
		return err
	case outJSONL:
		return nil
	case outCSV:
		if err := p.csvStart(); err != nil {
			return err
		}
		p.cw.Flush()
		return p.cw.Error()
	}
	if p.stream {
		return nil
	}
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		p.writeHeader(p.visible())
	}
	return p.tw.Flush()
}

// printAll prints rows and closes the output.
func printAll[T any](w io.Writer, format string, cols []column[T], toJSON func(T) any, rows []T) error {
	p := newRowPrinter(w, format, cols, toJSON)
	for _, r := range rows {
		if err := p.print(r); err != nil {
			return err
		}
	}
	return p.close()
}

// csvHead turns a table header into a CSV column name: "WINDOW START" → "window_start".
func csvHead(h string) string { return strings.ToLower(strings.ReplaceAll(h, " ", "_")) }

// clock formats times for tables: date, time and zone, in the local zone or, with --utc, in UTC.
type clock struct{ utc bool }

func clockOf(vp *viper.Viper) clock { return clock{utc: vp.GetBool("utc")} }

func (c clock) in(t time.Time) time.Time {
	if c.utc {
		return t.UTC()
	}
	return t.Local()
}

// second formats a time to the second: 2026-11-25 10:00:00 UTC.
func (c clock) second(t time.Time) string { return c.in(t).Format("2006-01-02 15:04:05 MST") }

// micro formats a flow time to the microsecond: 2026-11-25 10:00:00.123456 UTC.
func (c clock) micro(epoch float64) string {
	return c.in(epochTime(epoch)).Format("2006-01-02 15:04:05.000000 MST")
}

func epochTime(epoch float64) time.Time { return time.UnixMicro(int64(epoch * 1e6)) }

// rfc3339 is the JSON form of a time: RFC 3339 in UTC, with fractions of a second when there are any.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// --- samples ---

type sampleJSON struct {
	ID               string `json:"id"`
	Host             string `json:"host"`
	WindowStart      string `json:"windowStart"`
	WindowStartEpoch int64  `json:"windowStartEpoch"`
	WindowSeconds    uint32 `json:"windowSeconds"`
	Revision         uint32 `json:"revision"`
	FlowCount        int64  `json:"flowCount"`
	Bytes            int64  `json:"bytes"`
	State            string `json:"state"`
	FileName         string `json:"fileName"`
	RemoteID         string `json:"remoteId"`
	RelayError       string `json:"relayError"`
	WriteError       string `json:"writeError"`
	FlowsDropped     int64  `json:"flowsDropped"`
	CreateTime       string `json:"createTime"`
	UpdateTime       string `json:"updateTime"`
	// NetworkSage's answers (docs/enrichment.md).
	Verdict         string `json:"verdict"`
	Confidence      string `json:"confidence"`
	Summary         string `json:"summary"`
	EnrichmentError string `json:"enrichmentError"`
	FlowsMatched    int64  `json:"flowsMatched"`
	FlowsUnmatched  int64  `json:"flowsUnmatched"`
	RemoteUnmatched int64  `json:"remoteUnmatched"`
	ProcessTime     string `json:"processTime"` // "" until NetworkSage processed the sample
}

func sampleToJSON(s *flowfleetv1.Sample) any {
	return sampleJSON{ID: s.GetId(), Host: s.GetHost(), WindowStart: rfc3339(time.Unix(s.GetWindowStart(), 0)),
		WindowStartEpoch: s.GetWindowStart(), WindowSeconds: s.GetWindowSeconds(), Revision: s.GetRevision(),
		FlowCount: s.GetFlowCount(), Bytes: s.GetBytes(), State: stateName(s.GetState()), FileName: s.GetFileName(),
		RemoteID: s.GetRemoteId(), RelayError: s.GetRelayError(), WriteError: s.GetWriteError(),
		FlowsDropped: s.GetFlowsDropped(), CreateTime: rfc3339(s.GetCreateTime().AsTime()),
		UpdateTime: rfc3339(s.GetUpdateTime().AsTime()), Verdict: s.GetVerdict(), Confidence: s.GetConfidence(),
		Summary: s.GetSummary(), EnrichmentError: s.GetEnrichmentError(), FlowsMatched: s.GetFlowsMatched(),
		FlowsUnmatched: s.GetFlowsUnmatched(), RemoteUnmatched: s.GetRemoteUnmatched(), ProcessTime: optTime(s.GetProcessTime())}
}

// optTime is the JSON form of an optional time: "" when unset.
func optTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return rfc3339(t.AsTime())
}

func sampleColumns(c clock) []column[*flowfleetv1.Sample] {
	type S = *flowfleetv1.Sample
	return []column[S]{
		{head: "ID", cell: func(s S) string { return s.GetId() }},
		{head: "HOST", cell: func(s S) string { return s.GetHost() }},
		{head: "WINDOW START", cell: func(s S) string { return c.in(time.Unix(s.GetWindowStart(), 0)).Format(time.RFC3339) }},
		{head: "SECONDS", wide: true, cell: func(s S) string { return strconv.FormatUint(uint64(s.GetWindowSeconds()), 10) }},
		{head: "REV", wide: true, cell: func(s S) string { return strconv.FormatUint(uint64(s.GetRevision()), 10) }},
		{head: "FLOWS", cell: func(s S) string { return strconv.FormatInt(s.GetFlowCount(), 10) }},
		{head: "BYTES", wide: true, cell: func(s S) string { return strconv.FormatInt(s.GetBytes(), 10) }},
		{head: "DROPPED", wide: true, cell: func(s S) string { return strconv.FormatInt(s.GetFlowsDropped(), 10) }},
		{head: "STATE", cell: func(s S) string { return stateName(s.GetState()) }},
		{head: "REMOTE ID", cell: func(s S) string { return dash(s.GetRemoteId()) }},
		{head: "VERDICT", cell: func(s S) string { return dash(sanitize(verdictText(s))) }},
		{head: "MATCHED", wide: true, cell: func(s S) string { return matchedText(s) }},
		{head: "UPDATED", wide: true, cell: func(s S) string { return c.in(s.GetUpdateTime().AsTime()).Format(time.RFC3339) }},
		{head: "ERROR", wide: true, cell: func(s S) string { return dash(sanitize(sampleError(s))) }},
	}
}

// verdictText is a sample's verdict with its confidence: "malicious (high)".
func verdictText(s *flowfleetv1.Sample) string {
	if s.GetVerdict() == "" || s.GetConfidence() == "" {
		return s.GetVerdict()
	}
	return s.GetVerdict() + " (" + s.GetConfidence() + ")"
}

// matchedText says how NetworkSage's flows matched an enriched sample's: "98/100 +2" (matched of the
// sample's flows, and NetworkSage's flows that matched none).
func matchedText(s *flowfleetv1.Sample) string {
	st := s.GetState()
	if st != flowfleetv1.SampleState_SAMPLE_STATE_ENRICHED && s.GetFlowsMatched() == 0 && s.GetFlowsUnmatched() == 0 {
		return "-"
	}
	t := strconv.FormatInt(s.GetFlowsMatched(), 10) + "/" + strconv.FormatInt(s.GetFlowsMatched()+s.GetFlowsUnmatched(), 10)
	if n := s.GetRemoteUnmatched(); n > 0 {
		t += " +" + strconv.FormatInt(n, 10)
	}
	return t
}

// --- flows ---

type flowJSON struct {
	SrcAddr     string  `json:"srcAddr"`
	SrcPort     *int    `json:"srcPort"` // null for ICMP
	DstAddr     string  `json:"dstAddr"`
	DstPort     *int    `json:"dstPort"`
	DstName     string  `json:"dstName"`
	NameSource  string  `json:"nameSource"`
	Protocol    string  `json:"protocol"`
	SrcPkts     int64   `json:"srcPkts"`
	SrcBytes    int64   `json:"srcBytes"`
	DstPkts     int64   `json:"dstPkts"`
	DstBytes    int64   `json:"dstBytes"`
	Start       string  `json:"start"`
	FirstSeen   float64 `json:"firstSeen"`
	LastSeen    float64 `json:"lastSeen"`
	Duration    float64 `json:"duration"` // seconds
	WindowStart int64   `json:"windowStart"`
	// NetworkSage's answers ("" before enrichment), and the destination's metadata (null when none).
	Category    string           `json:"category"`
	FlowID      string           `json:"flowId"`
	EventID     string           `json:"eventId"`
	Destination *destinationJSON `json:"destination"`
	// GlobalCount is how many samples NetworkSage has that hold the flow (--global-count only).
	GlobalCount *int64 `json:"globalCount,omitempty"`
}

func portNumber(s string) *int {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" {
		return nil
	}
	return &n
}

func flowToJSON(f *flowfleetv1.Flow) any {
	j := flowJSON{SrcAddr: f.GetSrcAddr(), SrcPort: portNumber(f.GetSrcPort()), DstAddr: f.GetDstAddr(),
		DstPort: portNumber(f.GetDstPort()), DstName: f.GetDstName(), NameSource: nameSourceName(f.GetNameSource()),
		Protocol: protocolName(f.GetProtocol()), SrcPkts: f.GetSrcPkts(), SrcBytes: f.GetSrcBytes(),
		DstPkts: f.GetDstPkts(), DstBytes: f.GetDstBytes(), Start: rfc3339(epochTime(f.GetFirstSeen())),
		FirstSeen: f.GetFirstSeen(), LastSeen: f.GetLastSeen(), Duration: f.GetLastSeen() - f.GetFirstSeen(),
		WindowStart: f.GetWindowStart(), Category: f.GetCategory(), FlowID: f.GetFlowId(), EventID: f.GetEventId()}
	if d := f.GetDestination(); d != nil {
		j.Destination = &destinationJSON{Name: d.GetName(), Title: d.GetTitle(), Description: d.GetDescription(),
			Relevance: d.GetRelevance(), Tags: append([]string{}, d.GetTags()...)}
	}
	return j
}

func nameSourceName(n flowfleetv1.NameSource) string {
	return strings.ToLower(strings.TrimPrefix(n.String(), "NAME_SOURCE_"))
}

func protocolName(p flowfleetv1.Protocol) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PROTOCOL_"))
}

func flowColumns(c clock) []column[*flowfleetv1.Flow] {
	type F = *flowfleetv1.Flow
	endpoint := func(addr, port string, f F) string {
		if f.GetProtocol() == flowfleetv1.Protocol_PROTOCOL_ICMP {
			return addr
		}
		return addr + ":" + port
	}
	return []column[F]{
		{head: "SRC", cell: func(f F) string { return endpoint(f.GetSrcAddr(), f.GetSrcPort(), f) }},
		{head: "DST", cell: func(f F) string { return endpoint(sanitize(f.GetDstName()), f.GetDstPort(), f) }},
		{head: "DST ADDR", wide: true, cell: func(f F) string { return f.GetDstAddr() }},
		{head: "NAME SOURCE", cell: func(f F) string { return nameSourceName(f.GetNameSource()) }},
		{head: "PROTO", cell: func(f F) string { return strings.ToUpper(protocolName(f.GetProtocol())) }},
		{head: "SRC PKTS", cell: func(f F) string { return strconv.FormatInt(f.GetSrcPkts(), 10) }},
		{head: "SRC BYTES", cell: func(f F) string { return strconv.FormatInt(f.GetSrcBytes(), 10) }},
		{head: "DST PKTS", cell: func(f F) string { return strconv.FormatInt(f.GetDstPkts(), 10) }},
		{head: "DST BYTES", cell: func(f F) string { return strconv.FormatInt(f.GetDstBytes(), 10) }},
		{head: "START", cell: func(f F) string { return c.micro(f.GetFirstSeen()) }},
		{head: "DURATION", cell: func(f F) string { return strconv.FormatFloat(f.GetLastSeen()-f.GetFirstSeen(), 'f', 6, 64) + "s" }},
		{head: "CATEGORY", cell: func(f F) string { return dash(sanitize(f.GetCategory())) }},
		{head: "FLOW ID", wide: true, cell: func(f F) string { return dash(sanitize(f.GetFlowId())) }},
		{head: "EVENT ID", wide: true, cell: func(f F) string { return dash(sanitize(f.GetEventId())) }},
		{head: "DST TITLE", wide: true, cell: func(f F) string { return dash(sanitize(f.GetDestination().GetTitle())) }},
	}
}

// --- hosts ---

type hostJSON struct {
	Name             string `json:"name"`
	Connected        bool   `json:"connected"`
	OpenStreams      uint32 `json:"openStreams"`
	LastContact      string `json:"lastContact"`
	LastContactEpoch int64  `json:"lastContactEpoch"`
	SoftwareVersion  string `json:"softwareVersion"`
	FlowsReceived    uint64 `json:"flowsReceived"`
	PacketsDropped   uint64 `json:"packetsDropped"` // Host.drops_reported
	FlowsDropped     uint64 `json:"flowsDropped"`
	StreamID         string `json:"streamId"`
}

func hostToJSON(h *flowfleetv1.Host) any {
	return hostJSON{Name: h.GetName(), Connected: h.GetConnected(), OpenStreams: h.GetOpenStreams(), LastContact: rfc3339(h.GetLastContact().AsTime()),
		LastContactEpoch: h.GetLastContact().GetSeconds(), SoftwareVersion: h.GetSoftwareVersion(),
		FlowsReceived: h.GetFlowsReceived(), PacketsDropped: h.GetDropsReported(), FlowsDropped: h.GetFlowsDropped(),
		StreamID: h.GetStreamId()}
}

func hostColumns(c clock) []column[*flowfleetv1.Host] {
	type H = *flowfleetv1.Host
	return []column[H]{
		{head: "HOST", cell: func(h H) string { return h.GetName() }},
		{head: "CONNECTED", cell: func(h H) string { return strconv.FormatBool(h.GetConnected()) }},
		{head: "STREAMS", cell: func(h H) string { return strconv.FormatUint(uint64(h.GetOpenStreams()), 10) }},
		{head: "LAST CONTACT", cell: func(h H) string { return c.in(h.GetLastContact().AsTime()).Format(time.RFC3339) }},
		{head: "VERSION", cell: func(h H) string { return dash(sanitize(h.GetSoftwareVersion())) }},
		{head: "FLOWS", cell: func(h H) string { return strconv.FormatUint(h.GetFlowsReceived(), 10) }},
		{head: "PKT DROPS", cell: func(h H) string { return strconv.FormatUint(h.GetDropsReported(), 10) }},
		{head: "FLOW DROPS", cell: func(h H) string { return strconv.FormatUint(h.GetFlowsDropped(), 10) }},
		{head: "STREAM ID", wide: true, cell: func(h H) string { return dash(sanitize(h.GetStreamId())) }},
	}
}

// --- sample events (samples watch) ---

type sampleEventJSON struct {
	Time          string     `json:"time"`
	PreviousState string     `json:"previousState"` // "" for a new sample or revision
	Sample        sampleJSON `json:"sample"`
}

func sampleEventToJSON(e *flowfleetv1.SampleEvent) any {
	prev := ""
	if e.GetPreviousState() != flowfleetv1.SampleState_SAMPLE_STATE_UNSPECIFIED {
		prev = stateName(e.GetPreviousState())
	}
	return sampleEventJSON{Time: rfc3339(e.GetTime().AsTime()), PreviousState: prev,
		Sample: sampleToJSON(e.GetSample()).(sampleJSON)}
}

func sampleEventColumns(c clock) []column[*flowfleetv1.SampleEvent] {
	type E = *flowfleetv1.SampleEvent
	var cols []column[E]
	cols = append(cols, column[E]{head: "TIME", cell: func(e E) string { return c.second(e.GetTime().AsTime()) }})
	for _, sc := range sampleColumns(c) {
		cols = append(cols, column[E]{head: sc.head, wide: sc.wide, cell: func(e E) string { return sc.cell(e.GetSample()) }})
	}
	return cols
}

// printLost says in band that a watch lost events: a line in a table, an object {"eventsLost": N} in
// JSON; CSV has no room for it, so it goes to standard error there.
func printLost(w, stderr io.Writer, format string, n uint64) error {
	switch format {
	case outJSON, outJSONL:
		return json.NewEncoder(w).Encode(map[string]uint64{"eventsLost": n})
	case outCSV:
		_, err := fmt.Fprintf(stderr, "flowctl: %d events lost: this watcher was too slow\n", n)
		return err
	}
	_, err := fmt.Fprintf(w, "(%d events lost: this watcher was too slow)\n", n)
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
