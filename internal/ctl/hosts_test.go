package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
)

// flowctl hosts list follows next_page_token: it lists every host, however many pages they take.
func TestHostsListAllPages(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})

	const n = 1234 // flowctl asks for 500 a page: three pages
	addr := startCollectorWith(t, p, func(st store.Store) {
		var bs []store.Batch
		for i := 0; i < n; i++ {
			bs = append(bs, store.Batch{Host: fmt.Sprintf("host%04d", i), StreamID: "s", Seq: 1, Drops: uint64(i), Received: time.Now()})
		}
		if _, err := st.SaveBatches(context.Background(), bs); err != nil {
			t.Fatal(err)
		}
	})
	conn := []string{"--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile, "--ca", p.CAFile(), "--timeout", "10s"}

	out, err := flowctl(append([]string{"hosts", "list", "-o", "json"}, conn...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var hosts []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(out), &hosts); err != nil {
		t.Fatalf("%v\n%.500s", err, out)
	}
	if len(hosts) != n {
		t.Fatalf("%d hosts listed, want %d", len(hosts), n)
	}
	for i, h := range hosts {
		if want := fmt.Sprintf("host%04d", i); h.Name != want {
			t.Fatalf("host %d is %s, want %s (every host once, in name order)", i, h.Name, want)
		}
	}
	out, err = flowctl(append([]string{"hosts", "list"}, conn...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n+1 || !strings.HasPrefix(lines[0], "HOST") || !strings.HasPrefix(lines[n], "host1233 ") {
		t.Fatalf("table of %d lines (first %q, last %q), want a header and %d hosts", len(lines), lines[0], lines[len(lines)-1], n)
	}
	out, err = flowctl(append([]string{"hosts", "list", "--connected"}, conn...)...)
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("--connected with no sensor connected: %v\n%s", err, out)
	}
}

// flowctl hosts list shows packet drops and flow drops apart, and the host's open streams: two with
// different stream ids mean two sensors share one certificate (issue 14, items 4 and the cloned-VM
// detection).
func TestHostsListDropsAndStreams(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	sensor := p.Issue(t, auth.RoleSensor, "web", pki.IssueOptions{})
	addr := startCollectorWith(t, p, func(st store.Store) {
		if _, err := st.SaveBatches(context.Background(), []store.Batch{{Host: "web", StreamID: "s", Seq: 1, Drops: 3,
			FlowDrops: 21410, Received: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	})
	// Two sensors with the same certificate: two streams, two stream ids.
	creds, err := auth.NewClientCredentials(sensor,
		"127.0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, id := range []string{"vm-a", "vm-b"} {
		st, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{
			StreamId: id, SoftwareVersion: "v1", WindowSeconds: 60}}}); err != nil {
			t.Fatal(err)
		}
		if resp, err := st.Recv(); err != nil || resp.GetWelcome() == nil {
			t.Fatalf("stream %s: %v, %v", id, resp, err)
		}
	}
	out, err := flowctl("hosts", "list", "--collector", addr, "--cert", reader.CertFile, "--key", reader.KeyFile,
		"--ca", p.CAFile(), "--timeout", "10s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one host:\n%s", out)
	}
	header := strings.Split(lines[0], "  ")
	var cols []string
	for _, h := range header {
		if h = strings.TrimSpace(h); h != "" {
			cols = append(cols, h)
		}
	}
	if strings.Join(cols, "|") != "HOST|CONNECTED|STREAMS|LAST CONTACT|VERSION|FLOWS|PKT DROPS|FLOW DROPS" {
		t.Fatalf("header %q", cols)
	}
	row := strings.Fields(lines[1])
	if len(row) != 8 || row[0] != "web" || row[1] != "true" || row[2] != "2" || row[5] != "0" || row[6] != "3" || row[7] != "21410" {
		t.Fatalf("row %q, want web connected with 2 streams, 0 flows, 3 packets and 21410 flows dropped", row)
	}
}
