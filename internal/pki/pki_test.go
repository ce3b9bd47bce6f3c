package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func newTestCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := InitCA(InitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func TestInitCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "pki")
	ca, err := InitCA(InitOptions{Dir: dir, TrustDomain: "fleet.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, filepath.Join(dir, CAKeyFile)); got != 0o600 {
		t.Errorf("ca-key.pem mode %o, want 600", got)
	}
	if got := mode(t, filepath.Join(dir, CACertFile)); got != 0o644 {
		t.Errorf("ca.pem mode %o, want 644", got)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("created directory mode %o, want 700", got)
	}
	c := ca.Cert
	if !c.IsCA || !c.MaxPathLenZero || c.MaxPathLen != 0 || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA constraints: IsCA=%v MaxPathLen=%d zero=%v KeyUsage=%b", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if got := c.NotAfter.Sub(c.NotBefore); got != DefaultCADays*24*time.Hour {
		t.Errorf("CA validity %v, want %d days", got, DefaultCADays)
	}
	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.TrustDomain != "fleet.example.net" || !loaded.Cert.Equal(ca.Cert) {
		t.Errorf("LoadCA: trust domain %q, same certificate %v", loaded.TrustDomain, loaded.Cert.Equal(ca.Cert))
	}
}

func TestInitCARefusesToOverwrite(t *testing.T) {
	ca, dir := newTestCA(t)
	keyPath := filepath.Join(dir, CAKeyFile)
	before, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = InitCA(InitOptions{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second InitCA error = %v, want 'already exists … --force'", err)
	}
	after, _ := os.ReadFile(keyPath)
	if !bytes.Equal(before, after) {
		t.Fatal("refused InitCA changed ca-key.pem")
	}

	// Only the key present (say, the certificate was deleted): still refused, nothing written.
	if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(InitOptions{Dir: dir}); err == nil {
		t.Fatal("InitCA over an existing key succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); !os.IsNotExist(err) {
		t.Fatalf("refused InitCA wrote ca.pem: %v", err)
	}

	forced, err := InitCA(InitOptions{Dir: dir, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if forced.Cert.Equal(ca.Cert) {
		t.Fatal("--force did not make a new CA")
	}
	if got := mode(t, keyPath); got != 0o600 {
		t.Errorf("replaced key mode %o, want 600", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestIssueClient(t *testing.T) {
	ca, dir := newTestCA(t)
	for _, role := range []auth.Role{auth.RoleSensor, auth.RoleReader, auth.RoleAdmin} {
		t.Run(string(role), func(t *testing.T) {
			leaf, err := ca.Issue(IssueOptions{Role: role, Name: "host-1.example_x"})
			if err != nil {
				t.Fatal(err)
			}
			c := leaf.Cert
			if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://flowfleet.local/"+string(role)+"/host-1.example_x" {
				t.Errorf("URIs = %v", c.URIs)
			}
			if len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 {
				t.Errorf("client certificate has server names %v %v", c.DNSNames, c.IPAddresses)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || c.IsCA {
				t.Errorf("ExtKeyUsage %v IsCA %v, want client auth only", c.ExtKeyUsage, c.IsCA)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != DefaultLeafDays*24*time.Hour {
				t.Errorf("validity %v, want %d days", got, DefaultLeafDays)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("verify as client: %v", err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("client certificate verifies as a server certificate")
			}
			id, err := auth.FromCertificate(c, auth.DefaultTrustDomain)
			if err != nil || id != leaf.Identity {
				t.Errorf("FromCertificate = %+v, %v; want %+v", id, err, leaf.Identity)
			}
			p, err := leaf.WriteFiles(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if want := PathsFor(dir, role, "host-1.example_x"); p != want {
				t.Errorf("paths %+v, want %+v", p, want)
			}
			if got := mode(t, p.Key); got != 0o600 {
				t.Errorf("key mode %o, want 600", got)
			}
			if _, err := tls.LoadX509KeyPair(p.Cert, p.Key); err != nil {
				t.Errorf("written pair does not load: %v", err)
			}
		})
	}
}

func TestIssueCollector(t *testing.T) {
	ca, _ := newTestCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	def, err := ca.Issue(IssueOptions{Role: auth.RoleCollector, Name: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(def.Cert.DNSNames, []string{"localhost"}) || len(def.Cert.IPAddresses) != 1 || !def.Cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("default server names %v %v, want localhost 127.0.0.1", def.Cert.DNSNames, def.Cert.IPAddresses)
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := def.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify as server for %s: %v", host, err)
		}
	}
	if def.Cert.URIs[0].String() != "spiffe://flowfleet.local/collector/c1" {
		t.Errorf("URI %v", def.Cert.URIs)
	}

	custom, err := ca.Issue(IssueOptions{Role: auth.RoleCollector, Name: "c2",
		DNSNames: []string{"collector.example.net"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("::1")}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(custom.Cert.DNSNames, []string{"collector.example.net"}) || len(custom.Cert.IPAddresses) != 2 {
		t.Errorf("custom server names %v %v", custom.Cert.DNSNames, custom.Cert.IPAddresses)
	}
	if _, err := custom.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err == nil {
		t.Error("explicit names still include the localhost default")
	}
}

func TestIssueRejects(t *testing.T) {
	ca, _ := newTestCA(t)
	tests := []struct {
		name    string
		opts    IssueOptions
		wantErr string
	}{
		{"no role", IssueOptions{Name: "a"}, "unknown role"},
		{"bad role", IssueOptions{Role: "root", Name: "a"}, "unknown role"},
		{"no name", IssueOptions{Role: auth.RoleSensor}, "1–253"},
		{"bad name", IssueOptions{Role: auth.RoleSensor, Name: "a/b"}, "allowed are"},
		{"dotdot", IssueOptions{Role: auth.RoleSensor, Name: ".."}, "not allowed"},
		{"long name", IssueOptions{Role: auth.RoleSensor, Name: strings.Repeat("x", 254)}, "1–253"},
		{"bad trust domain", IssueOptions{Role: auth.RoleSensor, Name: "a", TrustDomain: "Upper.Case"}, "trust domain"},
		{"dns on sensor", IssueOptions{Role: auth.RoleSensor, Name: "a", DNSNames: []string{"x"}}, "collector only"},
		{"ip on reader", IssueOptions{Role: auth.RoleReader, Name: "a", IPAddresses: []net.IP{net.IPv4(1, 2, 3, 4)}}, "collector only"},
		{"bad dns", IssueOptions{Role: auth.RoleCollector, Name: "a", DNSNames: []string{"a b"}}, "DNS name"},
		{"negative days", IssueOptions{Role: auth.RoleSensor, Name: "a", Days: -1}, "days must be"},
		{"outlives CA", IssueOptions{Role: auth.RoleSensor, Name: "a", Days: DefaultCADays + 1}, "after its CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.Issue(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Issue error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestIssueTrustDomain(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(InitOptions{Dir: dir, TrustDomain: "fleet.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(IssueOptions{Role: auth.RoleSensor, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Identity.TrustDomain != "fleet.example.net" {
		t.Errorf("leaf trust domain %q, want the CA's", leaf.Identity.TrustDomain)
	}
	// A CA without a trust domain URI (made elsewhere) defaults to flowfleet.local.
	ca.TrustDomain = ""
	leaf, err = ca.Issue(IssueOptions{Role: auth.RoleSensor, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Identity.TrustDomain != auth.DefaultTrustDomain {
		t.Errorf("leaf trust domain %q, want %q", leaf.Identity.TrustDomain, auth.DefaultTrustDomain)
	}
}

func TestWriteFilesRefusesToOverwrite(t *testing.T) {
	ca, dir := newTestCA(t)
	first, err := ca.Issue(IssueOptions{Role: auth.RoleSensor, Name: "web01"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := first.WriteFiles(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(p.Key)
	second, err := ca.Issue(IssueOptions{Role: auth.RoleSensor, Name: "web01"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.WriteFiles(dir, false); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite error = %v", err)
	}
	if keyAfter, _ := os.ReadFile(p.Key); !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("refused write changed the key")
	}
	if _, err := second.WriteFiles(dir, true); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pair.Certificate[0], second.Cert.Raw) {
		t.Error("forced write did not replace the certificate")
	}
	if got := mode(t, p.Key); got != 0o600 {
		t.Errorf("replaced key mode %o, want 600", got)
	}
}

func TestParseCA(t *testing.T) {
	ca, _ := newTestCA(t)
	certPEM := encodeCert(ca.Cert.Raw)

	// openssl ecparam -genkey writes an "EC PARAMETERS" block before a SEC 1 "EC PRIVATE KEY".
	ecKey := ca.Key.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	got, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseCA with SEC 1 key: %v", err)
	}
	if got.TrustDomain != auth.DefaultTrustDomain {
		t.Errorf("trust domain %q", got.TrustDomain)
	}

	other, _ := newTestCA(t)
	otherKey, _ := encodeKey(other.Key)
	if _, err := ParseCA(certPEM, otherKey); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	leaf, err := ca.Issue(IssueOptions{Role: auth.RoleSensor, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := leaf.KeyPEM()
	if _, err := ParseCA(leaf.CertPEM(), leafKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: %v", err)
	}
	if _, err := ParseCA([]byte("junk"), keyPEM); err == nil {
		t.Error("junk certificate accepted")
	}
}

// A name of 253 characters is valid, but <role>-<name>-key.pem would pass the 255 bytes of a file name:
// the files get a shortened name, the certificate keeps the full one.
func TestWriteFilesLongName(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(InitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("n", 249) + ".net"
	leaf, err := ca.Issue(IssueOptions{Role: auth.RoleSensor, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	p, err := leaf.WriteFiles(dir, false)
	if err != nil {
		t.Fatalf("WriteFiles for a %d-character name: %v", len(name), err)
	}
	if p != PathsFor(dir, auth.RoleSensor, name) || len(filepath.Base(p.Key)) > 200 {
		t.Errorf("paths %+v: want PathsFor's, with file names of at most 200 bytes", p)
	}
	id, err := auth.FromCertificate(leaf.Cert, auth.DefaultTrustDomain)
	if err != nil || id.Name != name {
		t.Errorf("the certificate names %q (%v), want the full name", id.Name, err)
	}
	if short := PathsFor(dir, auth.RoleSensor, "web01"); filepath.Base(short.Cert) != "sensor-web01.pem" {
		t.Errorf("a short name's file is %s, want sensor-web01.pem", short.Cert)
	}
}
