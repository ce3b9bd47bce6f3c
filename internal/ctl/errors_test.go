package ctl

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/store"
)

// startCollector runs a real collector over mTLS on loopback and returns its address.
func startCollector(t *testing.T, p *pkitest.PKI) string { return startCollectorWith(t, p, nil) }

// startCollectorWith is startCollector on a store that seed fills first (seed may be nil).
func startCollectorWith(t *testing.T, p *pkitest.PKI, seed func(store.Store)) string {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	if seed != nil {
		seed(st)
	}
	c, err := collector.New(st, collector.Config{DataDir: t.TempDir(), Window: time.Minute}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := auth.NewServerCredentials(p.Files(auth.RoleCollector, "c"), log)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := c.NewGRPCServer(creds)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); st.Close() })
	return lis.Addr().String()
}

func flowctl(args ...string) (string, error) {
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// The first mistakes a newcomer makes get an error that says what to do.
func TestFriendlyErrors(t *testing.T) {
	p := pkitest.New(t)
	p.Issue(t, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})
	sensor := p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})
	expired := p.Issue(t, auth.RoleReader, "old", pki.IssueOptions{NotBefore: time.Now().Add(-72 * time.Hour), Days: 1})
	otherCA := pkitest.New(t).CAFile()
	caFile := p.CAFile()
	addr := startCollector(t, p)
	free := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}()

	cases := []struct {
		name            string
		addr, cert, key string
		ca              string
		want            []string
	}{
		{"works", addr, reader.CertFile, reader.KeyFile, caFile, nil},
		{"collector not running", free, reader.CertFile, reader.KeyFile, caFile, []string{"no collector is listening at " + free}},
		{"wrong CA", addr, reader.CertFile, reader.KeyFile, otherCA, []string{"--ca is the fleet's CA"}},
		{"wrong role", addr, sensor.CertFile, sensor.KeyFile, caFile, []string{"permission denied", "role reader or admin"}},
		{"expired certificate", addr, expired.CertFile, expired.KeyFile, caFile, []string{"expired"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := flowctl("samples", "list", "--collector", c.addr, "--cert", c.cert, "--key", c.key, "--ca", c.ca, "--timeout", "5s")
			if c.want == nil {
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := flowctl("samples", "list", "--collector", addr); err == nil || !strings.Contains(err.Error(), "--cert is required") {
		t.Errorf("missing --cert: %v", err)
	}
}
