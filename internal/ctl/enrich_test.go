package ctl

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// seedEnriched stores an enriched sample of three flows (the second one unmatched, as NetworkSage's
// list did not match it) the way the relay records one, and returns its id and categories.
func seedEnriched(t *testing.T, st store.Store) (string, []string) {
	t.Helper()
	ctx := context.Background()
	const ws = int64(1_764_064_800)
	names := []string{"c2.bad.example", "unmatched.example", "www.example.com"}
	s := flow.Sample{Start: float64(ws)}
	var pbs []*flowfleetv1.Flow
	for i, n := range names {
		f := flow.Flow{SrcAddr: "10.0.0.5", SrcPort: strconv.Itoa(40000 + i), DstAddr: "192.0.2." + strconv.Itoa(i+1), DstPort: "443",
			Name: n, NameSource: flow.SourcePassive, Protocol: flow.ProtoTCP, SrcPkts: 3, SrcBytes: 100, DstPkts: 2, DstBytes: 1000,
			First: float64(ws) + float64(i), Last: float64(ws) + float64(i) + 1, RelativeStart: float64(i), Duration: 1,
			Identifier: strconv.Itoa(i + 1)}
		s.Flows = append(s.Flows, f)
		pbs = append(pbs, flowpb.ToProto(&f, ws))
	}
	enc, err := flowpb.Encode(pbs)
	if err != nil {
		t.Fatal(err)
	}
	content := bayseflow.Encode(s, "web01_1764064800.bf", "")
	if _, err := st.SaveBatches(ctx, []store.Batch{{Host: "web01", StreamID: "s", Seq: 1, Received: time.Now(),
		Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 60, FlowCount: 3, Flows: enc}}}}); err != nil {
		t.Fatal(err)
	}
	id := "web01_1764064800"
	if _, err := st.CloseWindow(ctx, store.WindowRef{Host: "web01", WindowStart: ws, WindowSeconds: 60},
		func(store.WindowContent) (store.NewSample, error) {
			return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: 3, Bytes: int64(len(content)),
				State: store.StateWritten, Content: content, FlowChunks: [][]byte{enc}, Relay: true}, nil
		}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	step := func(c store.OutboxCompletion) {
		if _, err := st.ClaimOutbox(ctx, "w", now, time.Minute, 1); err != nil {
			t.Fatal(err)
		}
		c.SampleID, c.Owner, c.RemoteID = id, "w", "00dc397c3f85472b9c7f4203c408e4fb"
		if _, err := st.CompleteOutbox(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	cats := []string{sagefake.Category("c2.bad.example:443"), "", sagefake.Category("www.example.com:443")}
	var labels []store.FlowLabel
	for i, f := range s.Flows {
		if cats[i] == "" {
			labels = append(labels, store.FlowLabel{})
			continue
		}
		dst := f.Name + ":443"
		fid := sagefake.FlowID(f.SrcAddr+":"+f.SrcPort, dst, "TCP")
		labels = append(labels, store.FlowLabel{Category: cats[i], FlowID: fid, EventID: sagefake.EventID(cats[i], fid), Destination: dst})
	}
	step(store.OutboxCompletion{State: store.StateRelayed, PollAt: now, PollUntil: now.Add(time.Hour)})
	step(store.OutboxCompletion{State: store.StateProcessed, PollAt: now, PollUntil: now.Add(time.Hour), NextPhase: store.PhaseEnrich, Processed: now})
	step(store.OutboxCompletion{State: store.StateProcessed, PollAt: now, PollUntil: now.Add(time.Hour), NextPhase: store.PhaseReport,
		Labels: labels, Destinations: []store.Destination{{Name: "c2.bad.example:443", Title: "C2 <script>", Expires: now.Add(time.Hour)}}})
	step(store.OutboxCompletion{State: store.StateEnriched, Enrichment: &store.Enrichment{Verdict: "malicious", Confidence: "high",
		Summary: "one flow went to a C2", FlowsMatched: 2, FlowsUnmatched: 1, RemoteUnmatched: 1}})
	return id, cats
}

// What the enrichment stored shows in flowctl: VERDICT and MATCHED, CATEGORY and --category, labeled
// files, and global counts fetched on demand from NetworkSage.
func TestSamplesEnrichedOutputs(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	var id string
	var cats []string
	addr := startCollectorWith(t, p, func(st store.Store) { id, cats = seedEnriched(t, st) })
	conn := []string{"--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", p.CAFile(), "--timeout", "10s"}

	out, err := flowctl(append([]string{"samples", "list", "-o", "wide"}, conn...)...)
	if err != nil || !strings.Contains(out, "VERDICT") || !strings.Contains(out, "malicious (high)") || !strings.Contains(out, "2/3 +1") ||
		!strings.Contains(out, "enriched") {
		t.Fatalf("samples list: %v\n%s", err, out)
	}
	out, err = flowctl(append([]string{"samples", "list", "--state", "enriched", "-o", "json"}, conn...)...)
	var samples []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &samples) != nil || len(samples) != 1 || samples[0]["verdict"] != "malicious" ||
		samples[0]["flowsUnmatched"] != float64(1) || samples[0]["processTime"] == "" {
		t.Fatalf("samples list --state enriched: %v\n%s", err, out)
	}

	out, err = flowctl(append([]string{"samples", "flows", id}, conn...)...)
	if err != nil || !strings.Contains(out, "CATEGORY") || strings.Count(out, sagefake.CategoryMalicious) != 1 {
		t.Fatalf("samples flows: %v\n%s", err, out)
	}
	out, err = flowctl(append([]string{"samples", "flows", id, "--category", cats[2], "-o", "json"}, conn...)...)
	var flows []flowJSON
	if err != nil || json.Unmarshal([]byte(out), &flows) != nil || len(flows) != 1 || flows[0].DstName != "www.example.com" ||
		flows[0].Category != cats[2] || flows[0].Destination != nil {
		t.Fatalf("--category %s: %v\n%s", cats[2], err, out)
	}

	labeled := filepath.Join(t.TempDir(), "l.bf")
	if out, err := flowctl(append([]string{"samples", "get", id, "--labeled", "-f", labeled}, conn...)...); err != nil {
		t.Fatalf("get --labeled: %v\n%s", err, out)
	}
	b, err := os.ReadFile(labeled)
	if err != nil {
		t.Fatal(err)
	}
	file, err := bayseflow.Decode(b)
	if err != nil || len(file.Flows) != 3 {
		t.Fatalf("labeled file: %v", err)
	}
	for i, r := range file.Flows {
		if r.Label != cats[i] {
			t.Errorf("flow %d labeled %q, want %q", i, r.Label, cats[i])
		}
	}
	if !strings.Contains(string(b), `"label":"`+cats[0]+`"`) || strings.Count(string(b), `"label"`) != 2 {
		t.Errorf("an unmatched flow must carry no label:\n%s", b)
	}

	// --global-count: one request per distinct flow id, against the fake; the key from a file.
	fake := sagefake.New(sagefake.Options{Keys: []string{"k-0123456789abcdef"}})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("k-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gc := append([]string{"samples", "flows", id, "--global-count", "--global-count-rate", "50", "--networksage-url", srv.URL,
		"--networksage-api-key-file", keyFile, "-o", "json"}, conn...)
	out, err = flowctl(gc...)
	flows = nil
	if err != nil || json.Unmarshal([]byte(out), &flows) != nil || len(flows) != 3 {
		t.Fatalf("--global-count: %v\n%s", err, out)
	}
	for i, f := range flows {
		switch {
		case cats[i] == "" && f.GlobalCount != nil:
			t.Errorf("flow %d (unmatched) has a global count", i)
		case cats[i] != "" && (f.GlobalCount == nil || *f.GlobalCount != sagefake.Count(f.FlowID)):
			t.Errorf("flow %d: global count %v, want %d", i, f.GlobalCount, sagefake.Count(f.FlowID))
		}
	}
	if n := len(fake.RequestsTo(sagefake.RouteCount)); n != 2 {
		t.Errorf("%d count requests, want 2 (one per distinct flow id)", n)
	}
	if out, err := flowctl(append(gc, "--global-count-max", "1")...); err == nil || !strings.Contains(err.Error(), "--global-count-max") {
		t.Errorf("more flow ids than --global-count-max: %v\n%s", err, out)
	}
}
