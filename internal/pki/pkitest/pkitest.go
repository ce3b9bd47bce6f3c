// Package pkitest is the one test PKI of the module: a fleet CA in a temporary directory, and
// certificates issued from it into the same directory with the file names `flowctl certs` gives
// (pki.PathsFor). Tests of the collector, the sensor, auth, flowctl and the examples use it instead of
// building certificates their own way.
package pkitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
)

// PKI is a CA and the certificates issued from it, all in Dir.
type PKI struct {
	Dir string
	CA  *pki.CA
}

// New creates a CA in t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.InitCA(pki.InitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{Dir: dir, CA: ca}
}

// CAFile is the CA certificate's file.
func (p *PKI) CAFile() string { return filepath.Join(p.Dir, pki.CACertFile) }

// Files names role/name's certificate, key and the CA file in Dir, issued or not.
func (p *PKI) Files(role auth.Role, name string) auth.Files {
	paths := pki.PathsFor(p.Dir, role, name)
	return auth.Files{CertFile: paths.Cert, KeyFile: paths.Key, CAFile: p.CAFile()}
}

// Leaf issues a certificate for role/name without writing it (a collector's is for localhost and
// 127.0.0.1 unless opts names its addresses: pki's default).
func (p *PKI) Leaf(t testing.TB, role auth.Role, name string, opts pki.IssueOptions) *pki.Leaf {
	t.Helper()
	opts.Role, opts.Name = role, name
	leaf, err := p.CA.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// Issue issues a certificate for role/name and writes it and its key into Dir, replacing earlier ones
// (atomically: a reader sees the old pair or the new one).
func (p *PKI) Issue(t testing.TB, role auth.Role, name string, opts pki.IssueOptions) auth.Files {
	t.Helper()
	if _, err := p.Leaf(t, role, name, opts).WriteFiles(p.Dir, true); err != nil {
		t.Fatal(err)
	}
	return p.Files(role, name)
}

// Raw signs a client certificate with the CA outside pki, so that it can lack what pki always adds (a
// URI SAN, the client-auth usage): edit changes the template. It is written as admin <name>'s files.
func (p *PKI) Raw(t testing.TB, name string, edit func(*x509.Certificate)) auth.Files {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA.Cert, &key.PublicKey, p.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := p.Files(auth.RoleAdmin, name)
	if err := os.WriteFile(files.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return files
}
