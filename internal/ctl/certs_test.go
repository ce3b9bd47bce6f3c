package ctl

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
)

// runCerts executes a fresh `certs` command tree with args and returns its output.
func runCerts(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newCertsCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCommandInitAndIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	out, err := runCerts(t, "init", "--dir", dir, "--trust-domain", "fleet.example.net")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if !strings.Contains(out, "trust domain fleet.example.net") || !strings.Contains(out, "never commit") {
		t.Errorf("init output:\n%s", out)
	}

	out, err = runCerts(t, "issue", "--dir", dir, "--role", "collector", "--name", "c1",
		"--dns", "collector.example.net,localhost", "--ip", "10.0.0.5", "--ip", "127.0.0.1")
	if err != nil {
		t.Fatalf("issue collector: %v\n%s", err, out)
	}
	if !strings.Contains(out, "spiffe://fleet.example.net/collector/c1") || !strings.Contains(out, "collector.example.net, localhost, 10.0.0.5, 127.0.0.1") {
		t.Errorf("issue collector output:\n%s", out)
	}

	outDir := filepath.Join(t.TempDir(), "out")
	out, err = runCerts(t, "issue", "--dir", dir, "--role", "sensor", "--name", "web01", "--days", "30", "--out", outDir)
	if err != nil {
		t.Fatalf("issue sensor: %v\n%s", err, out)
	}
	p := pki.PathsFor(outDir, auth.RoleSensor, "web01")
	leafPEM, err := os.ReadFile(p.Cert)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustParseCert(t, leafPEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued sensor certificate does not verify: %v", err)
	}
	if id, err := auth.FromCertificate(leaf, "fleet.example.net"); err != nil || id.Name != "web01" || id.Role != auth.RoleSensor {
		t.Errorf("identity %+v, %v", id, err)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24; d != 30 {
		t.Errorf("validity %v days, want 30", d)
	}

	// Again without --force: refused, and the message says how to override.
	if out, err := runCerts(t, "issue", "--dir", dir, "--role", "sensor", "--name", "web01", "--out", outDir); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second issue: err %v\n%s", err, out)
	}
	if out, err := runCerts(t, "issue", "--dir", dir, "--role", "sensor", "--name", "web01", "--out", outDir, "--force"); err != nil {
		t.Errorf("issue --force: %v\n%s", err, out)
	}
	if out, err := runCerts(t, "init", "--dir", dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second init: err %v\n%s", err, out)
	}
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"issue", "--dir", dir, "--name", "a"}, `required flag(s) "role" not set`},
		{[]string{"issue", "--dir", dir, "--role", "sensor"}, `required flag(s) "name" not set`},
		{[]string{"issue", "--dir", dir, "--role", "root", "--name", "a"}, "unknown role"},
		{[]string{"issue", "--dir", dir, "--role", "sensor", "--name", "a"}, "flowctl certs init --dir"},
		{[]string{"issue", "--dir", dir, "--role", "sensor", "--name", "a", "--dns", "x"}, "--role collector only"},
		{[]string{"issue", "--dir", dir, "--role", "collector", "--name", "a", "--ip", "not-an-ip"}, "not an IP address"},
		{[]string{"init", "--dir", dir, "--trust-domain", "Bad Domain"}, "trust domain"},
		{[]string{"init", "--dir", dir, "--days", "0"}, ""}, // 0 means the default
		{[]string{"init", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := runCerts(t, tt.args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q\n%s", err, tt.wantErr, out)
			}
		})
	}
}

func TestCommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"init", "issue", "spiffe://<trust-domain>/<role>/<name>", "Never commit a private key"}},
		{[]string{"init", "--help"}, []string{"--dir", "--trust-domain", "--days", "--force", "--common-name", "flowfleet.local", "0600"}},
		{[]string{"issue", "--help"}, []string{"--dir", "--role", "--name", "--dns", "--ip", "--days", "--force", "--out", "--trust-domain", "(required)", "127.0.0.1"}},
	} {
		out, err := runCerts(t, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestOpenSSLRecipe runs the openssl commands of certs/README.md and checks that what they make is
// what pki and auth expect, so the document cannot drift from the code.
func TestOpenSSLRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "certs", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- openssl-recipe:begin -->\\s*```sh\\n(.*?)```\\s*<!-- openssl-recipe:end -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("certs/README.md has no openssl-recipe block")
	}
	dir := t.TempDir()
	sh := exec.Command("sh", "-c", string(m[1]))
	sh.Dir = dir
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("recipe failed: %v\n%s", err, out)
	}

	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatalf("pki.LoadCA on the openssl CA: %v", err)
	}
	if ca.TrustDomain != auth.DefaultTrustDomain || !ca.Cert.MaxPathLenZero {
		t.Errorf("openssl CA: trust domain %q, pathlen zero %v", ca.TrustDomain, ca.Cert.MaxPathLenZero)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tc := range []struct {
		role  auth.Role
		name  string
		usage x509.ExtKeyUsage
		host  string
	}{
		{auth.RoleCollector, "collector1", x509.ExtKeyUsageServerAuth, "127.0.0.1"},
		{auth.RoleSensor, "web01", x509.ExtKeyUsageClientAuth, ""},
		{auth.RoleReader, "alice", x509.ExtKeyUsageClientAuth, ""},
		{auth.RoleAdmin, "ops", x509.ExtKeyUsageClientAuth, ""},
	} {
		p := pki.PathsFor(dir, tc.role, tc.name)
		data, err := os.ReadFile(p.Cert)
		if err != nil {
			t.Fatal(err)
		}
		cert := mustParseCert(t, data)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
			t.Errorf("%s: verify: %v", p.Cert, err)
		}
		id, err := auth.FromCertificate(cert, auth.DefaultTrustDomain)
		if err != nil || id.Role != tc.role || id.Name != tc.name {
			t.Errorf("%s: identity %+v, %v", p.Cert, id, err)
		}
		if fi, err := os.Stat(p.Key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 600", p.Key, fi, err)
		}
	}
	// The openssl CA can issue with pki too.
	if _, err := ca.Issue(pki.IssueOptions{Role: auth.RoleSensor, Name: "mixed"}); err != nil {
		t.Errorf("issue from openssl CA: %v", err)
	}
}

func mustParseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
