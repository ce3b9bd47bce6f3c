package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

// flowctl hosts list follows next_page_token: it lists every host, however many pages they take.
func TestHostsListAllPages(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(pki.InitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	issue(t, ca, dir, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := issue(t, ca, dir, auth.RoleReader, "alice", pki.IssueOptions{})

	const n = 1234 // flowctl asks for 500 a page: three pages
	addr := startCollectorWith(t, dir, func(st store.Store) {
		var bs []store.Batch
		for i := 0; i < n; i++ {
			bs = append(bs, store.Batch{Host: fmt.Sprintf("host%04d", i), StreamID: "s", Seq: 1, Drops: uint64(i), Received: time.Now()})
		}
		if _, err := st.SaveBatches(context.Background(), bs); err != nil {
			t.Fatal(err)
		}
	})
	conn := []string{"--collector", addr, "--cert", reader.Cert, "--key", reader.Key, "--ca", filepath.Join(dir, pki.CACertFile), "--timeout", "10s"}

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
