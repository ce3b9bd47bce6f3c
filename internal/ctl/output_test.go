package ctl

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./internal/ctl -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/ctl -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var (
	t0          = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	testSamples = []*flowfleetv1.Sample{
		{Id: "web01_1764064800", Host: "web01", WindowStart: t0.Unix(), WindowSeconds: 300, Revision: 1, FlowCount: 42,
			Bytes: 123456, State: flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN, FileName: "web01_1764064800.bf",
			CreateTime: timestamppb.New(t0.Add(6 * time.Minute)), UpdateTime: timestamppb.New(t0.Add(6 * time.Minute))},
		{Id: "db.example_1764064800_r2", Host: "db.example", WindowStart: t0.Unix(), WindowSeconds: 300, Revision: 2,
			FlowCount: 0, State: flowfleetv1.SampleState_SAMPLE_STATE_RELAY_FAILED, RelayError: "refused:\x1b[31m key",
			RemoteId: "", FlowsDropped: 7, CreateTime: timestamppb.New(t0), UpdateTime: timestamppb.New(t0.Add(time.Hour))},
		{Id: "web02_1764064800", Host: "web02", WindowStart: t0.Unix(), WindowSeconds: 300, Revision: 1, FlowCount: 100,
			Bytes: 4096, State: flowfleetv1.SampleState_SAMPLE_STATE_ENRICHED, FileName: "web02_1764064800.bf",
			RemoteId: "00dc397c3f85472b9c7f4203c408e4fb", Verdict: "malicious", Confidence: "high",
			Summary: "2 flows went to a known C2\x1b[2J", EnrichmentError: "networksage categorization: status failed",
			FlowsMatched: 98, FlowsUnmatched: 2, RemoteUnmatched: 1, ProcessTime: timestamppb.New(t0.Add(7 * time.Minute)),
			CreateTime: timestamppb.New(t0.Add(6 * time.Minute)), UpdateTime: timestamppb.New(t0.Add(9 * time.Minute))},
	}
	testFlows = []*flowfleetv1.Flow{
		{SrcAddr: "10.0.0.5", SrcPort: "51000", DstAddr: "93.184.216.34", DstPort: "443", DstName: "example.com",
			NameSource: flowfleetv1.NameSource_NAME_SOURCE_SESSION, Protocol: flowfleetv1.Protocol_PROTOCOL_TCP,
			SrcPkts: 10, SrcBytes: 1200, DstPkts: 8, DstBytes: 64000, FirstSeen: float64(t0.Unix()) + 1.25,
			LastSeen: float64(t0.Unix()) + 3.5, WindowStart: t0.Unix(), Category: "fake-web-tls",
			FlowId: "1b2c3d4e5f60718293a4b5c6d7e8f901", Destination: &flowfleetv1.Destination{Name: "example.com:443",
				Title: "Example <b>domain</b>", Description: "IANA example", Relevance: "low", Tags: []string{"example", "iana"}}},
		{SrcAddr: "10.0.0.5", DstAddr: "10.0.0.1", DstName: "10.0.0.1", NameSource: flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL,
			Protocol: flowfleetv1.Protocol_PROTOCOL_ICMP, SrcPkts: 3, SrcBytes: 252, FirstSeen: float64(t0.Unix()) + 60,
			LastSeen: float64(t0.Unix()) + 62, WindowStart: t0.Unix()},
	}
	testHosts = []*flowfleetv1.Host{
		{Name: "web01", Connected: true, OpenStreams: 1, LastContact: timestamppb.New(t0), SoftwareVersion: "v0.2.0",
			FlowsReceived: 1 << 40, DropsReported: 3, FlowsDropped: 21410, StreamId: "s-1"},
		{Name: "db.example", LastContact: timestamppb.New(t0.Add(-time.Hour))},
	}
)

// Every listing in every output format, against golden files: the tables with their units and zones,
// CSV with every column, JSON with numbers as numbers, enum words and every field.
func TestOutputFormatsGolden(t *testing.T) {
	c := clock{utc: true}
	for _, format := range outputFormats {
		for name, print := range map[string]func(*bytes.Buffer) error{
			"samples": func(b *bytes.Buffer) error { return printAll(b, format, sampleColumns(c), sampleToJSON, testSamples) },
			"flows":   func(b *bytes.Buffer) error { return printAll(b, format, flowColumns(c), flowToJSON, testFlows) },
			"hosts":   func(b *bytes.Buffer) error { return printAll(b, format, hostColumns(c), hostToJSON, testHosts) },
		} {
			var b bytes.Buffer
			if err := print(&b); err != nil {
				t.Fatalf("%s -o %s: %v", name, format, err)
			}
			golden(t, name+"."+format, b.Bytes())
			checkParses(t, name, format, b.Bytes())
		}
	}
}

// checkParses reads the machine formats back: JSON arrays and lines, and CSV with a header row.
func checkParses(t *testing.T, name, format string, out []byte) {
	t.Helper()
	n := map[string]int{"samples": len(testSamples), "flows": len(testFlows), "hosts": len(testHosts)}[name]
	switch format {
	case outJSON:
		var rows []map[string]any
		if err := json.Unmarshal(out, &rows); err != nil || len(rows) != n {
			t.Fatalf("%s -o json: %d rows, %v", name, len(rows), err)
		}
		checkJSONRow(t, name, rows[0])
	case outJSONL:
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != n {
			t.Fatalf("%s -o jsonl: %d lines, want %d", name, len(lines), n)
		}
		for _, l := range lines {
			var row map[string]any
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("%s -o jsonl line %q: %v", name, l, err)
			}
		}
	case outCSV:
		recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil || len(recs) != n+1 {
			t.Fatalf("%s -o csv: %d records, %v", name, len(recs), err)
		}
	}
}

func checkJSONRow(t *testing.T, name string, row map[string]any) {
	t.Helper()
	want := map[string]map[string]any{
		"samples": {"flowCount": float64(42), "state": "written", "windowStartEpoch": float64(t0.Unix()),
			"windowStart": "2026-11-25T10:00:00Z", "remoteId": "", "flowsDropped": float64(0)},
		"flows": {"srcPort": float64(51000), "protocol": "tcp", "nameSource": "session", "duration": 2.25,
			"start": "2026-11-25T10:00:01.25Z", "dstBytes": float64(64000)},
		"hosts": {"flowsReceived": float64(1 << 40), "flowsDropped": float64(21410), "packetsDropped": float64(3),
			"openStreams": float64(1), "lastContact": "2026-11-25T10:00:00Z"},
	}[name]
	for k, v := range want {
		if row[k] != v {
			t.Errorf("%s JSON %s = %#v, want %#v", name, k, row[k], v)
		}
	}
}

// A watch prints a row at a time: JSON lines even for -o json, and says in band when events were lost.
func TestWatchRowsStream(t *testing.T) {
	ev := &flowfleetv1.SampleEvent{Sample: testSamples[0], Time: timestamppb.New(t0.Add(7 * time.Minute)),
		PreviousState: flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN}
	for _, format := range outputFormats {
		var b, errb bytes.Buffer
		p := newRowPrinter(&b, format, sampleEventColumns(clock{utc: true}), sampleEventToJSON)
		p.stream = true
		if err := p.print(ev); err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 {
			t.Errorf("-o %s: nothing written after the first event (a watch must not buffer)", format)
		}
		if err := printLost(&b, &errb, format, 3); err != nil {
			t.Fatal(err)
		}
		if err := p.print(ev); err != nil {
			t.Fatal(err)
		}
		if err := p.close(); err != nil {
			t.Fatal(err)
		}
		golden(t, "watch."+format, append(b.Bytes(), errb.Bytes()...))
	}
}

// Bad -o values are refused with the list of formats.
func TestOutputFormatRefused(t *testing.T) {
	for _, args := range [][]string{{"samples", "list", "-o", "yaml"}, {"hosts", "list", "-o", "xml"}, {"samples", "flows", "x", "-o", "tsv"}} {
		_, err := flowctl(args...)
		if err == nil || !strings.Contains(err.Error(), "table, wide, json, jsonl, csv") {
			t.Errorf("%q: err %v, want a refusal listing the formats", args, err)
		}
	}
}

// Every command's --help, against golden files: what a user reads first changes only on purpose.
func TestHelpGolden(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/nonexistent") // defaults that depend on the user's directories
	t.Setenv("XDG_CACHE_HOME", "/nonexistent")
	var walk func(cmd *cobra.Command)
	seen := 0
	walk = func(cmd *cobra.Command) {
		if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
			return
		}
		path := strings.Fields(cmd.CommandPath())[1:]
		out, err := flowctl(append(path, "--help")...)
		if err != nil {
			t.Fatalf("%v --help: %v", path, err)
		}
		golden(t, "help/"+strings.Join(append([]string{"flowctl"}, path...), "_")+".txt", []byte(out))
		seen++
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand())
	if seen < 15 {
		t.Fatalf("only %d commands' help checked", seen)
	}
}
