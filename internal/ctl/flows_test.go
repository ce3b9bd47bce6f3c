package ctl

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowindex"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
)

// flowctl flows search and top against a collector whose index holds two hosts' samples: CSV, JSON
// lines and table read back exactly; a glob that matches no label count finds nothing; a bad CIDR
// fails naming --dst's field.
func TestFlowsSearchAndTop(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	ws := time.Now().Add(-time.Hour).Unix() / 60 * 60
	addr := startCollectorWith(t, p, func(st store.Store) {
		ctx := context.Background()
		for i, h := range []struct{ host, addr, name string }{{"web01", "93.184.216.34", "www.example.com"}, {"web02", "8.8.8.8", "dns.google"}} {
			f := &flowfleetv1.Flow{SrcAddr: "10.0.0.1", SrcPort: "40000", DstAddr: h.addr, DstPort: "443", DstName: h.name,
				NameSource: flowfleetv1.NameSource_NAME_SOURCE_SESSION, Protocol: flowfleetv1.Protocol_PROTOCOL_TCP,
				SrcPkts: 1, DstPkts: 1, SrcBytes: 10, DstBytes: 20, FirstSeen: float64(ws), LastSeen: float64(ws), WindowStart: ws}
			b, err := flowpb.Encode([]*flowfleetv1.Flow{f, f})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.SaveBatches(ctx, []store.Batch{{Host: h.host, StreamID: "s", Seq: uint64(i + 1), Received: time.Now(),
				Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte("x")}}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CloseWindow(ctx, store.WindowRef{Host: h.host, WindowStart: ws, WindowSeconds: 60},
				func(c store.WindowContent) (store.NewSample, error) {
					return store.NewSample{ID: h.host + "_x", FileName: h.host + "_x.bf", FlowCount: 2, Bytes: 1,
						State: store.StateWritten, Content: []byte("c"), FlowChunks: [][]byte{b}}, nil
				}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := (&flowindex.Indexer{Store: st}).IndexPending(ctx); err != nil || n != 2 {
			t.Fatalf("indexed %d, %v", n, err)
		}
	})
	conn := []string{"--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", p.CAFile(), "--timeout", "10s"}

	out, err := flowctl(append([]string{"flows", "search", "--dst", "*.example.com", "-o", "csv"}, conn...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][1] != "web01" || recs[1][3] != "93.184.216.34" || recs[1][6] != "www.example.com" ||
		recs[1][9] != "2" || recs[1][11] != "60" {
		t.Fatalf("csv %q, %v", recs, err)
	}
	out, err = flowctl(append([]string{"flows", "search", "--port", "443", "--since", "2h", "-o", "jsonl"}, conn...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var hosts []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			Host     string `json:"host"`
			Flows    int    `json:"flows"`
			SampleID string `json:"sampleId"`
			DstPort  int    `json:"dstPort"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Flows != 2 || r.SampleID == "" || r.DstPort != 443 {
			t.Fatalf("jsonl line %q: %v", l, err)
		}
		hosts = append(hosts, r.Host)
	}
	if strings.Join(hosts, ",") != "web01,web02" {
		t.Fatalf("hosts %v", hosts)
	}
	out, err = flowctl(append([]string{"flows", "search", "--dst", "dns.google"}, conn...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "WINDOW") || !strings.Contains(lines[1], "dns.google") ||
		!strings.Contains(lines[1], time.Unix(ws, 0).Format("2006-01-02")) {
		t.Fatalf("table: %v\n%s", err, out)
	}
	out, err = flowctl(append([]string{"flows", "top", "--by", "host", "-o", "json"}, conn...)...)
	var groups []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &groups) != nil || len(groups) != 2 || groups[0]["host"] != "web01" ||
		groups[0]["flows"] != float64(2) {
		t.Fatalf("top: %v\n%s", err, out)
	}
	if out, err = flowctl(append([]string{"flows", "search", "--dst", "10.0.0.0/33"}, conn...)...); err == nil ||
		!strings.Contains(err.Error()+out, "dst") {
		t.Fatalf("bad CIDR: %v\n%s", err, out)
	}
}
