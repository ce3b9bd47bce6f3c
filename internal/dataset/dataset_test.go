package dataset

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/goleak"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func u16(v uint16) *uint16 { return &v }

// sampleRecords covers every column: a fleet TCP flow with a window and a name, an offline ICMP flow
// (no ports, no window, no destination address), and text that needs CSV quoting.
func sampleRecords() []Record {
	ws := time.Unix(1_709_287_200, 0).UTC()
	return []Record{
		{Host: "web-1", SampleID: "s-1", WindowStart: &ws, StartTime: time.UnixMicro(1_709_287_201_100_000).UTC(),
			DurationSeconds: 1.25, SrcIP: "10.20.0.5", SrcPort: u16(51000), DstIP: "203.0.113.7", DstPort: u16(443),
			DstName: "www.example.org", NameSource: "session", Protocol: "tcp", SrcPackets: 9, SrcBytes: 517,
			DstPackets: 8, DstBytes: 4120},
		{SampleID: "cap_filtered.bf", StartTime: time.UnixMicro(1_709_287_202_000_001).UTC(), SrcIP: "fd00::1",
			DstName: "2001:db8::2", NameSource: "original", Protocol: "icmp", SrcPackets: 1, SrcBytes: 64},
		{Host: `odd,"host"`, SampleID: "s-2", WindowStart: &ws, StartTime: ws, DurationSeconds: 0.000001,
			SrcIP: "10.0.0.1", SrcPort: u16(0), DstIP: "10.0.0.2", DstPort: u16(65535), DstName: "a\nb",
			NameSource: "passive", Protocol: "udp", Category: "c", Verdict: "v"},
	}
}

func write(t *testing.T, f Format, recs []Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(f, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(recs...); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 0 && f != CSV {
		t.Errorf("%s: %d bytes written before Close (want them buffered)", f, buf.Len())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// csvRows is what the CSV of sampleRecords must hold, header first.
func csvRows() [][]string {
	return [][]string{
		Columns,
		{"web-1", "s-1", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:00:01.100000Z", "1.25", "10.20.0.5", "51000",
			"203.0.113.7", "443", "www.example.org", "session", "tcp", "9", "517", "8", "4120", "", ""},
		{"", "cap_filtered.bf", "", "2024-03-01T10:00:02.000001Z", "0", "fd00::1", "", "", "", "2001:db8::2", "original",
			"icmp", "1", "64", "0", "0", "", ""},
		{`odd,"host"`, "s-2", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:00:00.000000Z", "0.000001", "10.0.0.1", "0",
			"10.0.0.2", "65535", "a\nb", "passive", "udp", "0", "0", "0", "0", "c", "v"},
	}
}

func TestCSVRoundTrip(t *testing.T) {
	got, err := csv.NewReader(bytes.NewReader(write(t, CSV, sampleRecords()))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := csvRows(); !reflect.DeepEqual(got, want) {
		t.Errorf("CSV rows\n%q\nwant\n%q", got, want)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	out := write(t, JSONL, sampleRecords())
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	var objs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if len(m) != len(Columns) {
			t.Errorf("line has %d members, want %d (every column, zero values included)", len(m), len(Columns))
		}
		objs = append(objs, m)
	}
	first, icmp := objs[0], objs[1]
	if first["src_port"] != 51000.0 || first["src_packets"] != 9.0 || first["duration_seconds"] != 1.25 ||
		first["window_start"] != "2024-03-01T10:00:00.000000Z" || first["start_time"] != "2024-03-01T10:00:01.100000Z" {
		t.Errorf("first record %v", first)
	}
	if icmp["src_port"] != nil || icmp["dst_port"] != nil || icmp["window_start"] != nil || icmp["host"] != "" {
		t.Errorf("ICMP offline record %v: want null ports and window", icmp)
	}
}

// readParquet reads a Parquet file back with parquet-go's reader.
func readParquet(t *testing.T, data []byte) ([]parquetRecord, *parquet.File) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[parquetRecord](bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return rows, f
}

func TestParquetRoundTrip(t *testing.T) {
	recs := sampleRecords()
	rows, f := readParquet(t, write(t, Parquet, recs))
	var names []string
	for _, c := range f.Schema().Fields() {
		names = append(names, c.Name())
	}
	if !reflect.DeepEqual(names, Columns) {
		t.Errorf("Parquet columns %v, want %v", names, Columns)
	}
	if len(rows) != len(recs) {
		t.Fatalf("%d rows, want %d", len(rows), len(recs))
	}
	for i, r := range rows {
		want := recs[i]
		if r.Host != want.Host || r.StartTime != want.StartTime.UnixMicro() || r.DstName != want.DstName ||
			r.DurationSeconds != want.DurationSeconds || r.SrcPackets != want.SrcPackets || r.Verdict != want.Verdict ||
			(r.SrcPort == nil) != (want.SrcPort == nil) || (r.WindowStart == nil) != (want.WindowStart == nil) {
			t.Errorf("row %d: %+v, want %+v", i, r, want)
		}
		if want.DstPort != nil && (r.DstPort == nil || *r.DstPort != int32(*want.DstPort)) {
			t.Errorf("row %d: dst_port %v, want %d", i, r.DstPort, *want.DstPort)
		}
	}
}

// TestParquetRowGroupsBounded: the writer cuts a row group every ParquetRowGroupRows records, so it
// never holds more than one in memory.
func TestParquetRowGroupsBounded(t *testing.T) {
	rec := sampleRecords()[0]
	var buf bytes.Buffer
	w, err := NewWriter(Parquet, &buf)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]Record, 1000)
	for i := range chunk {
		chunk[i] = rec
	}
	total := 2*ParquetRowGroupRows + 5
	for n := 0; n < total; n += len(chunk) {
		if err := w.Write(chunk[:min(len(chunk), total-n)]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, f := readParquet(t, buf.Bytes())
	if g := len(f.RowGroups()); g != 3 || f.NumRows() != int64(total) {
		t.Errorf("%d row groups, %d rows; want 3 and %d", g, f.NumRows(), total)
	}
	for _, g := range f.RowGroups() {
		if g.NumRows() > ParquetRowGroupRows {
			t.Errorf("row group of %d rows, more than %d", g.NumRows(), ParquetRowGroupRows)
		}
	}
}

// python runs a python3 script on path and returns its standard output; it skips (saying why) when
// python3 or the module is missing.
func python(t *testing.T, module, script, path string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: the independent CSV reader cannot run (scripts/setup.sh installs it)")
	}
	if err := exec.Command("python3", "-c", "import "+module).Run(); err != nil {
		t.Skipf("python3 lacks the %s module (scripts/setup.sh installs it)", module)
	}
	out, err := exec.Command("python3", "-c", script, path).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return string(out)
}

// TestCSVReadByPython: Python's csv module, an independent reader, gets every row and column back.
func TestCSVReadByPython(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.csv")
	if err := os.WriteFile(path, write(t, CSV, sampleRecords()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := python(t, "csv", `import csv, json, sys
with open(sys.argv[1], newline="") as f:
    print(json.dumps(list(csv.reader(f))))`, path)
	var got [][]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if want := csvRows(); !reflect.DeepEqual(got, want) {
		t.Errorf("python csv rows\n%q\nwant\n%q", got, want)
	}
}

// hyparquetDir is where scripts/setup.sh installs hyparquet, a Parquet reader written apart from
// parquet-go (JavaScript, run by node); FLOWFLEET_NODE_PREFIX overrides it.
func hyparquetDir() string {
	if d := os.Getenv("FLOWFLEET_NODE_PREFIX"); d != "" {
		return d
	}
	return "/usr/local/lib/flowfleet"
}

// TestParquetReadByHyparquet: an independent Parquet implementation reads the file: the column names,
// types (timestamps, optional ports) and values come back as written.
func TestParquetReadByHyparquet(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the independent Parquet reader cannot run (scripts/setup.sh installs nodejs)")
	}
	mod := filepath.Join(hyparquetDir(), "node_modules", "hyparquet", "package.json")
	if _, err := os.Stat(mod); err != nil {
		t.Skipf("hyparquet is not installed in %s (scripts/setup.sh installs it)", hyparquetDir())
	}
	path := filepath.Join(t.TempDir(), "flows.parquet")
	if err := os.WriteFile(path, write(t, Parquet, sampleRecords()), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
const { asyncBufferFromFile, parquetReadObjects, parquetMetadataAsync, parquetSchema } = await import(process.argv[1]);
const file = await asyncBufferFromFile(process.argv[2]);
const meta = await parquetMetadataAsync(file);
const rows = await parquetReadObjects({ file });
const columns = parquetSchema(meta).children.map(c => c.element.name);
console.log(JSON.stringify({ columns, rows }, (k, v) =>
  typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.toISOString() : v));
`
	entry := filepath.Join(hyparquetDir(), "node_modules", "hyparquet", "src", "node.js") // its Node.js entry
	cmd := exec.Command("node", "--input-type=module", "-e", script, "file://"+entry, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		Columns []string         `json:"columns"`
		Rows    []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if !reflect.DeepEqual(got.Columns, Columns) {
		t.Errorf("columns %v, want %v", got.Columns, Columns)
	}
	if len(got.Rows) != 3 {
		t.Fatalf("%d rows, want 3: %s", len(got.Rows), out)
	}
	first, icmp, odd := got.Rows[0], got.Rows[1], got.Rows[2]
	for k, want := range map[string]any{"host": "web-1", "window_start": "2024-03-01T10:00:00.000Z",
		"start_time": "2024-03-01T10:00:01.100Z", "duration_seconds": 1.25, "src_port": 51000.0, "dst_port": 443.0,
		"dst_name": "www.example.org", "name_source": "session", "protocol": "tcp", "src_bytes": 517.0, "dst_bytes": 4120.0} {
		if first[k] != want {
			t.Errorf("first row %s = %v (%T), want %v", k, first[k], first[k], want)
		}
	}
	if icmp["src_port"] != nil || icmp["window_start"] != nil || icmp["dst_ip"] != "" {
		t.Errorf("ICMP row %v: want null ports and window, empty dst_ip", icmp)
	}
	if odd["host"] != `odd,"host"` || odd["dst_name"] != "a\nb" || odd["verdict"] != "v" || odd["dst_port"] != 65535.0 {
		t.Errorf("third row %v", odd)
	}
}

// TestFromFlowAndProto: the two converters give the same record for the same flow.
func TestFromFlowAndProto(t *testing.T) {
	ws := time.Unix(1_709_287_200, 0).UTC()
	m := Meta{Host: "web-1", SampleID: "s-1", WindowStart: &ws}
	f := flow.Flow{SrcAddr: "10.20.0.5", SrcPort: "51000", DstAddr: "203.0.113.7", DstPort: "443", Protocol: flow.ProtoTCP,
		SrcPkts: 9, SrcBytes: 517, DstPkts: 8, DstBytes: 4120, First: 1_709_287_201.1, Last: 1_709_287_202.35,
		Name: "www.example.org", NameSource: flow.SourceSession, Duration: 1.25}
	pf := &flowfleetv1.Flow{SrcAddr: "10.20.0.5", SrcPort: "51000", DstAddr: "203.0.113.7", DstPort: "443",
		Protocol: flowfleetv1.Protocol_PROTOCOL_TCP, SrcPkts: 9, SrcBytes: 517, DstPkts: 8, DstBytes: 4120,
		FirstSeen: 1_709_287_201.1, LastSeen: 1_709_287_202.35, DstName: "www.example.org",
		NameSource: flowfleetv1.NameSource_NAME_SOURCE_SESSION}
	a, b := FromFlow(&f, m), FromProto(pf, m) // b's duration from a float subtraction, rounded to 1.25
	if !reflect.DeepEqual(a, b) {
		t.Errorf("FromFlow %+v\nFromProto %+v", a, b)
	}
	if a.StartTime != time.UnixMicro(1_709_287_201_100_000).UTC() || *a.DstPort != 443 || a.Protocol != "tcp" || a.NameSource != "session" {
		t.Errorf("record %+v", a)
	}
	for _, p := range []string{"", "65536", "-1", "12a", "123456"} {
		if port(p) != nil {
			t.Errorf("port(%q) = %d, want nil", p, *port(p))
		}
	}
	if p := port(strconv.Itoa(65535)); p == nil || *p != 65535 {
		t.Errorf("port(65535) = %v", p)
	}
}
