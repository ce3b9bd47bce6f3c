package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 §4.2.1.2 method (1): SubjectKeyId is a SHA-1 of the public key, not a security property.
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/flowfleet/flowfleet/internal/auth"
)

// File names inside a certificate directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// Defaults and bounds.
const (
	DefaultCADays   = 3650
	DefaultLeafDays = 365
	MaxDays         = 36500
	// Backdate is how far before "now" a certificate becomes valid, to tolerate clock skew.
	Backdate = 5 * time.Minute
)

// Organization is the subject organisation of every certificate pki makes.
const Organization = "FlowFleet"

// CA is a certificate authority: its certificate and private key.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
	// TrustDomain is the trust domain from the CA's spiffe://<trust-domain> URI SAN, or "" if it has
	// none (a CA made elsewhere, e.g. with openssl).
	TrustDomain string
}

// InitOptions configures InitCA.
type InitOptions struct {
	// Dir is where ca.pem and ca-key.pem are written; created (mode 0700) if missing. Required.
	Dir string
	// TrustDomain is recorded in the CA's URI SAN and name; "" means auth.DefaultTrustDomain.
	TrustDomain string
	// CommonName of the CA; "" means "FlowFleet CA (<trust domain>)".
	CommonName string
	// Days the CA is valid; 0 means DefaultCADays. At most MaxDays.
	Days int
	// Force replaces an existing CA. Every certificate the old CA issued stops being trusted.
	Force bool
	// Now is the issuing time; zero means time.Now().
	Now time.Time
}

// NewCA creates a CA in memory.
func NewCA(opts InitOptions) (*CA, error) {
	td := opts.TrustDomain
	if td == "" {
		td = auth.DefaultTrustDomain
	}
	if err := auth.ValidateTrustDomain(td); err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	days, err := checkDays(opts.Days, DefaultCADays)
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	cn := opts.CommonName
	if cn == "" {
		cn = "FlowFleet CA (" + td + ")"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	notBefore := now(opts.Now).Add(-Backdate)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{Organization}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: td}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA: parse certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, TrustDomain: td}, nil
}

// InitCA creates a CA and writes Dir/ca.pem and Dir/ca-key.pem (0600). It fails without writing
// anything if either file exists, unless opts.Force is set.
func InitCA(opts InitOptions) (*CA, error) {
	if opts.Dir == "" {
		return nil, errors.New("init CA: no directory given")
	}
	certPath, keyPath := filepath.Join(opts.Dir, CACertFile), filepath.Join(opts.Dir, CAKeyFile)
	if !opts.Force {
		if err := refuseExisting(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("init CA: %w", err)
		}
	}
	ca, err := NewCA(opts)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if err := writePair(opts.Dir, certPath, encodeCert(ca.Cert.Raw), keyPath, keyPEM, opts.Force); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	return ca, nil
}

// LoadCA reads Dir/ca.pem and Dir/ca-key.pem.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return ParseCA(certPEM, keyPEM)
}

// ParseCA parses a PEM CA certificate and its PEM private key (PKCS#8, SEC 1 EC or PKCS#1 RSA).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("parse CA: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("parse CA: certificate is not a CA (needs basicConstraints CA:TRUE and keyCertSign)")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("parse CA: private key does not match the CA certificate")
	}
	ca := &CA{Cert: cert, Key: key}
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" && (u.Path == "" || u.Path == "/") && auth.ValidateTrustDomain(u.Host) == nil {
			ca.TrustDomain = u.Host
			break
		}
	}
	return ca, nil
}

// IssueOptions describes a leaf certificate.
type IssueOptions struct {
	// Role of the holder. Required.
	Role auth.Role
	// Name of the holder: the sensor's host name, a user or a collector name. Required, 1–253
	// characters of [A-Za-z0-9._-].
	Name string
	// TrustDomain of the identity; "" means the CA's trust domain, or auth.DefaultTrustDomain if the CA
	// records none.
	TrustDomain string
	// DNSNames and IPAddresses are the server names a collector certificate is valid for. Only role
	// collector may have them; when both are empty it gets "localhost" and 127.0.0.1.
	DNSNames    []string
	IPAddresses []net.IP
	// Days the certificate is valid; 0 means DefaultLeafDays. At most MaxDays, and never past the CA's
	// own expiry.
	Days int
	// NotBefore is when the certificate becomes valid; zero means now minus Backdate.
	NotBefore time.Time
}

// Leaf is an issued certificate and its private key.
type Leaf struct {
	// Cert is the certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
	// Identity is the identity in its URI SAN.
	Identity auth.Identity
}

// Issue signs a new certificate for opts with a fresh ECDSA P-256 key.
func (ca *CA) Issue(opts IssueOptions) (*Leaf, error) {
	td := opts.TrustDomain
	if td == "" {
		td = ca.TrustDomain
	}
	if td == "" {
		td = auth.DefaultTrustDomain
	}
	id := auth.Identity{TrustDomain: td, Role: opts.Role, Name: opts.Name}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	days, err := checkDays(opts.Days, DefaultLeafDays)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	dns, ips := slices.Clone(opts.DNSNames), slices.Clone(opts.IPAddresses)
	extUsage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if id.Role == auth.RoleCollector {
		extUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		if len(dns) == 0 && len(ips) == 0 {
			dns, ips = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
		}
	} else if len(dns) > 0 || len(ips) > 0 {
		return nil, fmt.Errorf("issue: DNS and IP names are for role %s only, not %s", auth.RoleCollector, id.Role)
	}
	for _, d := range dns {
		if err := checkDNSName(d); err != nil {
			return nil, fmt.Errorf("issue: %w", err)
		}
	}
	notBefore := opts.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-Backdate)
	}
	notAfter := notBefore.Add(time.Duration(days) * 24 * time.Hour)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("issue: certificate would expire %s, after its CA (%s); lower --days or renew the CA",
			notAfter.UTC().Format(time.DateOnly), ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         id.Name,
			Organization:       []string{Organization},
			OrganizationalUnit: []string{string(id.Role)},
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           extUsage,
		BasicConstraintsValid: true,
		SubjectKeyId:          skid,
		URIs:                  []*url.URL{id.URI()},
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue: parse certificate: %w", err)
	}
	return &Leaf{Cert: cert, Key: key, Identity: id}, nil
}

// CertPEM returns the certificate in PEM.
func (l *Leaf) CertPEM() []byte { return encodeCert(l.Cert.Raw) }

// KeyPEM returns the private key as a PEM "PRIVATE KEY" (PKCS#8) block.
func (l *Leaf) KeyPEM() ([]byte, error) { return encodeKey(l.Key) }

// Paths are the files a Leaf was written to.
type Paths struct {
	// Cert is the certificate file, <dir>/<role>-<name>.pem.
	Cert string
	// Key is the private key file, <dir>/<role>-<name>-key.pem, mode 0600.
	Key string
}

// maxFileBase bounds <role>-<name> in file names: with "-key.pem" and an atomic write's temporary
// suffix it stays within the 255 bytes a file name may have.
const maxFileBase = 200

// PathsFor returns where WriteFiles puts the certificate of role and name in dir. A name too long for a
// file name (names may have 253 characters) is shortened with auth.ShortName; the certificate itself
// holds the full name.
func PathsFor(dir string, role auth.Role, name string) Paths {
	base := string(role) + "-" + name
	if len(base) > maxFileBase {
		base = string(role) + "-" + auth.ShortName(name)
	}
	base = filepath.Join(dir, base)
	return Paths{Cert: base + ".pem", Key: base + "-key.pem"}
}

// WriteFiles writes the certificate and key into dir (created, mode 0700, if missing). It fails
// without writing anything if either file exists, unless force is set.
func (l *Leaf) WriteFiles(dir string, force bool) (Paths, error) {
	p := PathsFor(dir, l.Identity.Role, l.Identity.Name)
	if !force {
		if err := refuseExisting(p.Cert, p.Key); err != nil {
			return Paths{}, fmt.Errorf("write certificate: %w", err)
		}
	}
	keyPEM, err := l.KeyPEM()
	if err != nil {
		return Paths{}, fmt.Errorf("write certificate: %w", err)
	}
	if err := writePair(dir, p.Cert, l.CertPEM(), p.Key, keyPEM, force); err != nil {
		return Paths{}, fmt.Errorf("write certificate: %w", err)
	}
	return p, nil
}

func checkDays(days, def int) (int, error) {
	switch {
	case days == 0:
		return def, nil
	case days < 0 || days > MaxDays:
		return 0, fmt.Errorf("days must be 1–%d, got %d", MaxDays, days)
	}
	return days, nil
}

func checkDNSName(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("DNS name %q must be 1–253 characters", d)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '*') {
			return fmt.Errorf("DNS name %q has %q; allowed are letters, digits, '.', '-' and a leading '*.'", d, c)
		}
	}
	return nil
}

func now(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	// The SHA-1 of the whole SubjectPublicKeyInfo: unique per key, which is all an identifier needs.
	sum := sha1.Sum(der) //nolint:gosec // identifier, not a signature
	return sum[:], nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue // e.g. "EC PARAMETERS" written by openssl ecparam
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}
