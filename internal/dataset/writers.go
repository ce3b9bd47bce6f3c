package dataset

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
)

// bufSize is the buffer of the CSV and JSON-lines writers.
const bufSize = 64 << 10

// ParquetRowGroupRows bounds a Parquet row group: the writer holds at most one row group in memory
// (about 100 bytes a record before encoding, so some 6 MiB), and readers can skip or stream by group.
const ParquetRowGroupRows = 65536

// timeText is how CSV and JSON lines write timestamps: RFC 3339, UTC, to the microsecond.
const timeText = "2006-01-02T15:04:05.000000Z07:00"

// --- CSV ---

type csvWriter struct {
	bw  *bufio.Writer
	cw  *csv.Writer
	row []string
}

func newCSVWriter(w io.Writer) (*csvWriter, error) {
	bw := bufio.NewWriterSize(w, bufSize)
	c := &csvWriter{bw: bw, cw: csv.NewWriter(bw), row: make([]string, len(Columns))}
	if err := c.cw.Write(Columns); err != nil {
		return nil, fmt.Errorf("dataset: csv header: %w", err)
	}
	return c, nil
}

func (c *csvWriter) Write(recs ...Record) error {
	for i := range recs {
		r := &recs[i]
		c.row = append(c.row[:0], r.Host, r.SampleID, optTime(r.WindowStart), r.StartTime.UTC().Format(timeText),
			strconv.FormatFloat(r.DurationSeconds, 'f', -1, 64), r.SrcIP, optPort(r.SrcPort), r.DstIP, optPort(r.DstPort),
			r.DstName, r.NameSource, r.Protocol, strconv.FormatInt(r.SrcPackets, 10), strconv.FormatInt(r.SrcBytes, 10),
			strconv.FormatInt(r.DstPackets, 10), strconv.FormatInt(r.DstBytes, 10), r.Category, r.Verdict)
		if err := c.cw.Write(c.row); err != nil {
			return fmt.Errorf("dataset: csv: %w", err)
		}
	}
	return nil
}

func (c *csvWriter) Close() error {
	c.cw.Flush()
	if err := c.cw.Error(); err != nil {
		return fmt.Errorf("dataset: csv: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("dataset: csv: %w", err)
	}
	return nil
}

func optTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(timeText)
}

func optPort(p *uint16) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(int(*p))
}

// --- JSON lines ---

// jsonRecord is a record as a JSON object: numbers as numbers, times as RFC 3339 text, a missing port
// or window as null.
type jsonRecord struct {
	Host            string  `json:"host"`
	SampleID        string  `json:"sample_id"`
	WindowStart     *string `json:"window_start"`
	StartTime       string  `json:"start_time"`
	DurationSeconds float64 `json:"duration_seconds"`
	SrcIP           string  `json:"src_ip"`
	SrcPort         *uint16 `json:"src_port"`
	DstIP           string  `json:"dst_ip"`
	DstPort         *uint16 `json:"dst_port"`
	DstName         string  `json:"dst_name"`
	NameSource      string  `json:"name_source"`
	Protocol        string  `json:"protocol"`
	SrcPackets      int64   `json:"src_packets"`
	SrcBytes        int64   `json:"src_bytes"`
	DstPackets      int64   `json:"dst_packets"`
	DstBytes        int64   `json:"dst_bytes"`
	Category        string  `json:"category"`
	Verdict         string  `json:"verdict"`
}

type jsonlWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func newJSONLWriter(w io.Writer) *jsonlWriter {
	bw := bufio.NewWriterSize(w, bufSize)
	return &jsonlWriter{bw: bw, enc: json.NewEncoder(bw)}
}

func (j *jsonlWriter) Write(recs ...Record) error {
	for i := range recs {
		r := &recs[i]
		jr := jsonRecord{Host: r.Host, SampleID: r.SampleID, StartTime: r.StartTime.UTC().Format(timeText),
			DurationSeconds: r.DurationSeconds, SrcIP: r.SrcIP, SrcPort: r.SrcPort, DstIP: r.DstIP, DstPort: r.DstPort,
			DstName: r.DstName, NameSource: r.NameSource, Protocol: r.Protocol, SrcPackets: r.SrcPackets,
			SrcBytes: r.SrcBytes, DstPackets: r.DstPackets, DstBytes: r.DstBytes, Category: r.Category, Verdict: r.Verdict}
		if r.WindowStart != nil {
			ws := optTime(r.WindowStart)
			jr.WindowStart = &ws
		}
		if err := j.enc.Encode(&jr); err != nil { // one object and a newline
			return fmt.Errorf("dataset: jsonl: %w", err)
		}
	}
	return nil
}

func (j *jsonlWriter) Close() error {
	if err := j.bw.Flush(); err != nil {
		return fmt.Errorf("dataset: jsonl: %w", err)
	}
	return nil
}

// --- Parquet ---

// parquetRecord is a record as a Parquet row: timestamps as INT64 microseconds since the epoch (UTC),
// ports as optional INT32 (Parquet has no unsigned 16-bit physical type), strings as UTF-8 byte arrays.
type parquetRecord struct {
	Host            string  `parquet:"host,dict"`
	SampleID        string  `parquet:"sample_id,dict"`
	WindowStart     *int64  `parquet:"window_start,optional,timestamp(microsecond)"`
	StartTime       int64   `parquet:"start_time,timestamp(microsecond)"`
	DurationSeconds float64 `parquet:"duration_seconds"`
	SrcIP           string  `parquet:"src_ip,dict"`
	SrcPort         *int32  `parquet:"src_port,optional"`
	DstIP           string  `parquet:"dst_ip,dict"`
	DstPort         *int32  `parquet:"dst_port,optional"`
	DstName         string  `parquet:"dst_name,dict"`
	NameSource      string  `parquet:"name_source,dict"`
	Protocol        string  `parquet:"protocol,dict"`
	SrcPackets      int64   `parquet:"src_packets"`
	SrcBytes        int64   `parquet:"src_bytes"`
	DstPackets      int64   `parquet:"dst_packets"`
	DstBytes        int64   `parquet:"dst_bytes"`
	Category        string  `parquet:"category,dict"`
	Verdict         string  `parquet:"verdict,dict"`
}

type parquetWriter struct {
	bw   *bufio.Writer
	pw   *parquet.GenericWriter[parquetRecord]
	rows []parquetRecord
	// ints holds the optional values of rows, so a Write allocates none per record.
	ints []int64
	i32  []int32
}

func newParquetWriter(w io.Writer) *parquetWriter {
	bw := bufio.NewWriterSize(w, bufSize)
	return &parquetWriter{bw: bw, pw: parquet.NewGenericWriter[parquetRecord](bw,
		parquet.MaxRowsPerRowGroup(ParquetRowGroupRows), parquet.CreatedBy("flowfleet", "", ""))}
}

// parquetChunk is how many records Write converts at a time.
const parquetChunk = 1024

func (p *parquetWriter) Write(recs ...Record) error {
	for len(recs) > 0 {
		n := min(len(recs), parquetChunk)
		p.rows, p.ints, p.i32 = p.rows[:0], p.ints[:0], p.i32[:0]
		// Capacity for every optional value of the chunk: the pointers taken below stay valid.
		if cap(p.ints) < n || cap(p.i32) < 2*n {
			p.ints, p.i32 = make([]int64, 0, n), make([]int32, 0, 2*n)
		}
		for i := range recs[:n] {
			r := &recs[i]
			pr := parquetRecord{Host: r.Host, SampleID: r.SampleID, StartTime: r.StartTime.UnixMicro(),
				DurationSeconds: r.DurationSeconds, SrcIP: r.SrcIP, DstIP: r.DstIP, DstName: r.DstName,
				NameSource: r.NameSource, Protocol: r.Protocol, SrcPackets: r.SrcPackets, SrcBytes: r.SrcBytes,
				DstPackets: r.DstPackets, DstBytes: r.DstBytes, Category: r.Category, Verdict: r.Verdict}
			if r.WindowStart != nil {
				p.ints = append(p.ints, r.WindowStart.UnixMicro())
				pr.WindowStart = &p.ints[len(p.ints)-1]
			}
			if r.SrcPort != nil {
				p.i32 = append(p.i32, int32(*r.SrcPort))
				pr.SrcPort = &p.i32[len(p.i32)-1]
			}
			if r.DstPort != nil {
				p.i32 = append(p.i32, int32(*r.DstPort))
				pr.DstPort = &p.i32[len(p.i32)-1]
			}
			p.rows = append(p.rows, pr)
		}
		if _, err := p.pw.Write(p.rows); err != nil {
			return fmt.Errorf("dataset: parquet: %w", err)
		}
		recs = recs[n:]
	}
	return nil
}

func (p *parquetWriter) Close() error {
	if err := p.pw.Close(); err != nil {
		return fmt.Errorf("dataset: parquet: %w", err)
	}
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("dataset: parquet: %w", err)
	}
	return nil
}
