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
	"github.com/flowfleet/flowfleet/internal/store"
)

// startCollector runs a real collector over mTLS on loopback and returns its address.
func startCollector(t *testing.T, dir string) string { return startCollectorWith(t, dir, nil) }

// startCollectorWith is startCollector on a store that seed fills first (seed may be nil).
func startCollectorWith(t *testing.T, dir string, seed func(store.Store)) string {
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
	paths := pki.PathsFor(dir, auth.RoleCollector, "c")
	creds, err := auth.NewServerCredentials(auth.Files{CertFile: paths.Cert, KeyFile: paths.Key, CAFile: filepath.Join(dir, pki.CACertFile)}, log)
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

func issue(t *testing.T, ca *pki.CA, dir string, role auth.Role, name string, opts pki.IssueOptions) pki.Paths {
	t.Helper()
	opts.Role, opts.Name = role, name
	if role == auth.RoleCollector {
		opts.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	leaf, err := ca.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := leaf.WriteFiles(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
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
	dir := t.TempDir()
	ca, err := pki.InitCA(pki.InitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	issue(t, ca, dir, auth.RoleCollector, "c", pki.IssueOptions{})
	reader := issue(t, ca, dir, auth.RoleReader, "alice", pki.IssueOptions{})
	sensor := issue(t, ca, dir, auth.RoleSensor, "web01", pki.IssueOptions{})
	expired := issue(t, ca, dir, auth.RoleReader, "old", pki.IssueOptions{NotBefore: time.Now().Add(-72 * time.Hour), Days: 1})
	otherDir := t.TempDir()
	if _, err := pki.InitCA(pki.InitOptions{Dir: otherDir}); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, pki.CACertFile)
	addr := startCollector(t, dir)
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
		{"works", addr, reader.Cert, reader.Key, caFile, nil},
		{"collector not running", free, reader.Cert, reader.Key, caFile, []string{"no collector is listening at " + free}},
		{"wrong CA", addr, reader.Cert, reader.Key, filepath.Join(otherDir, pki.CACertFile), []string{"--ca is the fleet's CA"}},
		{"wrong role", addr, sensor.Cert, sensor.Key, caFile, []string{"permission denied", "role reader or admin"}},
		{"expired certificate", addr, expired.Cert, expired.Key, caFile, []string{"expired"}},
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
