// Package dataset owns FlowFleet's dataset schema: one typed, documented record per flow, shared by
// offline datasets (`flowctl convert --to`, `flowctl show --to`) and fleet exports, and the streaming
// writers that put records into CSV, JSON lines or Parquet. docs/dataset.md documents every column.
//
// # Stability
//
// The schema is stable: columns keep their names, types, order and meaning; new columns are only ever
// added at the end. Readers should select columns by name.
//
// # Usage
//
//  1. NewWriter(format, w) for the destination (each writer buffers; w need not be).
//  2. Write records as they come: FromFlow (pkg/flow engine flows) or FromProto (API flows) make them.
//  3. Close, which flushes: a CSV or JSON-lines file is complete only after it, and a Parquet file has
//     no footer before it.
//
// Memory stays constant whatever the number of records: CSV and JSON lines write each record through a
// 64 KiB buffer, and Parquet cuts a row group every ParquetRowGroupRows records, so at most one row
// group is held. A Writer is not safe for concurrent use.
package dataset

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Record is one flow of a dataset. Its fields are the dataset's columns, in order (docs/dataset.md).
type Record struct {
	// Host is the sensor's host name ("" for an offline input).
	Host string
	// SampleID is the sample the flow belongs to: the collector's sample id, or for an offline input
	// the name of the BayseFlow file its conversion writes.
	SampleID string
	// WindowStart is the start of the sample's window; nil for an offline input (no window).
	WindowStart *time.Time
	// StartTime is the flow's first packet (absolute, UTC, microseconds).
	StartTime time.Time
	// DurationSeconds is from the first to the last packet (0 when unknown).
	DurationSeconds float64
	// SrcIP and DstIP are the source and destination addresses; DstIP is "" where the input keeps only
	// a name (a BayseFlow file whose name source is not "original").
	SrcIP string
	// SrcPort and DstPort are nil for ICMP.
	SrcPort *uint16
	DstIP   string
	DstPort *uint16
	// DstName is the destination's name (an address when nothing named it).
	DstName string
	// NameSource is where DstName came from: original, dns, cache, session, … (as the flags take it).
	NameSource string
	// Protocol is tcp, udp or icmp.
	Protocol string
	// Packets and bytes each way.
	SrcPackets, SrcBytes, DstPackets, DstBytes int64
	// Category and Verdict come from enrichment; "" until it lands.
	Category string
	Verdict  string
}

// Columns are the dataset's column names, in order.
var Columns = []string{"host", "sample_id", "window_start", "start_time", "duration_seconds", "src_ip", "src_port",
	"dst_ip", "dst_port", "dst_name", "name_source", "protocol", "src_packets", "src_bytes", "dst_packets",
	"dst_bytes", "category", "verdict"}

// Format is a dataset file format.
type Format string

// Formats.
const (
	CSV     Format = "csv"
	JSONL   Format = "jsonl"
	Parquet Format = "parquet"
)

// ParseFormat checks a --to value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case CSV, JSONL, Parquet:
		return f, nil
	}
	return "", fmt.Errorf("unknown dataset format %q (want csv, jsonl or parquet)", s)
}

// Ext is the file name extension of the format, with its dot.
func (f Format) Ext() string { return "." + string(f) }

// Writer writes records to a dataset file.
type Writer interface {
	// Write appends records.
	Write(recs ...Record) error
	// Close flushes what is buffered and ends the file (Parquet's footer); it does not close the
	// underlying io.Writer.
	Close() error
}

// NewWriter returns a streaming writer of format f on w.
func NewWriter(f Format, w io.Writer) (Writer, error) {
	switch f {
	case CSV:
		return newCSVWriter(w)
	case JSONL:
		return newJSONLWriter(w), nil
	case Parquet:
		return newParquetWriter(w), nil
	}
	return nil, fmt.Errorf("unknown dataset format %q", f)
}

// Meta is what a record knows of its sample.
type Meta struct {
	Host        string
	SampleID    string
	WindowStart *time.Time
}

// FromFlow makes the record of an engine flow (First and Last absolute, named).
func FromFlow(f *flow.Flow, m Meta) Record {
	dur := f.Duration
	if f.DurationUnknown || dur < 0 {
		dur = 0
	}
	return Record{Host: m.Host, SampleID: m.SampleID, WindowStart: m.WindowStart, StartTime: epoch(f.First),
		DurationSeconds: dur, SrcIP: f.SrcAddr, SrcPort: port(f.SrcPort), DstIP: f.DstAddr, DstPort: port(f.DstPort),
		DstName: f.Name, NameSource: string(f.NameSource), Protocol: strings.ToLower(string(f.Protocol)),
		SrcPackets: f.SrcPkts, SrcBytes: f.SrcBytes, DstPackets: f.DstPkts, DstBytes: f.DstBytes}
}

// FromProto makes the record of an API flow (as `flowctl samples flows` and `flowctl show` read them).
func FromProto(f *flowfleetv1.Flow, m Meta) Record {
	return Record{Host: m.Host, SampleID: m.SampleID, WindowStart: m.WindowStart, StartTime: epoch(f.GetFirstSeen()),
		DurationSeconds: micros(max(f.GetLastSeen()-f.GetFirstSeen(), 0)), SrcIP: f.GetSrcAddr(), SrcPort: port(f.GetSrcPort()),
		DstIP: f.GetDstAddr(), DstPort: port(f.GetDstPort()), DstName: f.GetDstName(),
		NameSource: enumWord(f.GetNameSource().String(), "NAME_SOURCE_"), Protocol: enumWord(f.GetProtocol().String(), "PROTOCOL_"),
		SrcPackets: f.GetSrcPkts(), SrcBytes: f.GetSrcBytes(), DstPackets: f.GetDstPkts(), DstBytes: f.GetDstBytes()}
}

// micros rounds seconds to the microsecond, the resolution of flow times (a difference of two float
// times is not exact: 0.20000004768371582 is 0.2).
func micros(sec float64) float64 { return math.Round(sec*1e6) / 1e6 }

// enumWord is the word a flag takes for an enum value: PROTOCOL_TCP → tcp.
func enumWord(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }

// epoch turns seconds since the epoch into a UTC time, to the microsecond (flow times' resolution).
func epoch(sec float64) time.Time {
	return time.UnixMicro(int64(math.Round(sec * 1e6))).UTC()
}

// port parses a port; "" (ICMP) and anything that is not 0–65535 give nil.
func port(s string) *uint16 {
	if s == "" || len(s) > 5 {
		return nil
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return nil
		}
		n = n*10 + int(c-'0')
	}
	if n > math.MaxUint16 {
		return nil
	}
	p := uint16(n)
	return &p
}

// FlowWriter writes engine flows as records of one sample (the shape `flowctl convert --to` needs).
type FlowWriter struct {
	w    Writer
	meta Meta
	recs []Record
}

// NewFlowWriter returns a FlowWriter that writes through w with meta on every record.
func NewFlowWriter(w Writer, meta Meta) *FlowWriter { return &FlowWriter{w: w, meta: meta} }

// WriteFlows writes flows (First and Last absolute, named).
func (fw *FlowWriter) WriteFlows(flows []flow.Flow) error {
	fw.recs = fw.recs[:0]
	for i := range flows {
		fw.recs = append(fw.recs, FromFlow(&flows[i], fw.meta))
	}
	return fw.w.Write(fw.recs...)
}

// Close closes the Writer.
func (fw *FlowWriter) Close() error { return fw.w.Close() }
