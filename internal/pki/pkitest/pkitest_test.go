package pkitest

import (
	"crypto/x509"
	"os"
	"testing"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
)

// Issue writes a certificate the CA verifies, with the role and name in its URI SAN; a collector's is
// for 127.0.0.1 and localhost.
func TestIssue(t *testing.T) {
	p := New(t)
	files := p.Issue(t, auth.RoleCollector, "c1", pki.IssueOptions{})
	for _, f := range []string{files.CertFile, files.KeyFile, files.CAFile} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	leaf := p.Leaf(t, auth.RoleReader, "alice", pki.IssueOptions{})
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the CA does not verify its leaf: %v", err)
	}
	id, err := auth.FromCertificate(leaf.Cert, "flowfleet.local")
	if err != nil || id.Role != auth.RoleReader || id.Name != "alice" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	c := p.Leaf(t, auth.RoleCollector, "c2", pki.IssueOptions{})
	if len(c.Cert.IPAddresses) != 1 || c.Cert.IPAddresses[0].String() != "127.0.0.1" || len(c.Cert.DNSNames) != 1 {
		t.Fatalf("collector SANs %v %v", c.Cert.IPAddresses, c.Cert.DNSNames)
	}
}
