package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain is the SPIFFE trust domain used when none is configured.
const DefaultTrustDomain = "flowfleet.local"

// Role is what a certificate's holder may do.
type Role string

// The roles a FlowFleet certificate can carry.
const (
	// RoleSensor may ingest flows (IngestService).
	RoleSensor Role = "sensor"
	// RoleReader may query samples and hosts (SampleService, FleetService).
	RoleReader Role = "reader"
	// RoleAdmin may do everything a sensor or a reader may.
	RoleAdmin Role = "admin"
	// RoleCollector identifies a collector's server certificate. It grants no API access beyond what
	// any authenticated identity has (health, reflection).
	RoleCollector Role = "collector"
)

// Roles lists every valid role, in a fixed order.
func Roles() []Role { return []Role{RoleSensor, RoleReader, RoleAdmin, RoleCollector} }

// ParseRole returns the Role named s, or an error if s is not a valid role.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want sensor, reader, admin or collector)", s)
}

// MaxNameLen is the longest valid identity name.
const MaxNameLen = 253

// ErrInvalidIdentity is wrapped by every error about a certificate's or URI's identity.
var ErrInvalidIdentity = errors.New("invalid identity")

// Identity is who a certificate belongs to: spiffe://TrustDomain/Role/Name.
type Identity struct {
	// TrustDomain is the SPIFFE trust domain, e.g. "flowfleet.local".
	TrustDomain string
	// Role is what the holder may do.
	Role Role
	// Name is the host or user name; for a sensor, the host its flows are filed under.
	Name string
}

// URI returns the identity's SPIFFE ID, spiffe://<trust-domain>/<role>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/" + string(id.Role) + "/" + id.Name}
}

// String returns the identity's SPIFFE ID as text.
func (id Identity) String() string { return id.URI().String() }

// Validate reports whether every part of the identity is well formed.
func (id Identity) Validate() error {
	if err := ValidateTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	if _, err := ParseRole(string(id.Role)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	return ValidateName(id.Name)
}

// ValidateName reports whether name is a valid identity name: 1–253 characters of [A-Za-z0-9._-],
// and not "." or "..".
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: name must be 1–%d characters, got %d", ErrInvalidIdentity, MaxNameLen, len(name))
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: name %q is not allowed", ErrInvalidIdentity, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: name %q has %q at byte %d; allowed are A-Z a-z 0-9 . _ -", ErrInvalidIdentity, name, c, i)
		}
	}
	return nil
}

// ValidateTrustDomain reports whether td is a valid SPIFFE trust domain: 1–255 characters of
// [a-z0-9._-].
func ValidateTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("%w: trust domain must be 1–255 characters, got %d", ErrInvalidIdentity, len(td))
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: trust domain %q has %q at byte %d; allowed are a-z 0-9 . _ -", ErrInvalidIdentity, td, c, i)
		}
	}
	return nil
}

// ParseURI parses a SPIFFE ID of the form spiffe://<trust-domain>/<role>/<name>. It accepts only the
// canonical form: no user, port, query, fragment or percent-encoding.
func ParseURI(u *url.URL) (Identity, error) {
	if u == nil {
		return Identity{}, fmt.Errorf("%w: no URI", ErrInvalidIdentity)
	}
	if u.Scheme != "spiffe" {
		return Identity{}, fmt.Errorf("%w: URI %q is not a spiffe URI", ErrInvalidIdentity, u)
	}
	if u.Opaque != "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return Identity{}, fmt.Errorf("%w: spiffe URI %q must be spiffe://<trust-domain>/<role>/<name> only", ErrInvalidIdentity, u)
	}
	if u.RawPath != "" {
		return Identity{}, fmt.Errorf("%w: spiffe URI %q is not in canonical form (percent-encoding or characters that need it)", ErrInvalidIdentity, u)
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 3 || parts[0] != "" {
		return Identity{}, fmt.Errorf("%w: spiffe URI %q: path must be /<role>/<name>", ErrInvalidIdentity, u)
	}
	role, err := ParseRole(parts[1])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: spiffe URI %q: %w", ErrInvalidIdentity, u, err)
	}
	id := Identity{TrustDomain: u.Host, Role: role, Name: parts[2]}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("spiffe URI %q: %w", u, err)
	}
	return id, nil
}

// FromCertificate returns the identity of a certificate that the caller has already verified. The
// certificate must carry exactly one spiffe URI SAN (other URI schemes are ignored), and its trust
// domain must be trustDomain.
func FromCertificate(cert *x509.Certificate, trustDomain string) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrInvalidIdentity)
	}
	var spiffe []*url.URL
	for _, u := range cert.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			spiffe = append(spiffe, u)
		}
	}
	switch len(spiffe) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q has no spiffe URI SAN", ErrInvalidIdentity, cert.Subject.CommonName)
	case 1:
	default:
		return Identity{}, fmt.Errorf("%w: certificate %q has %d spiffe URI SANs, want exactly one", ErrInvalidIdentity, cert.Subject.CommonName, len(spiffe))
	}
	id, err := ParseURI(spiffe[0])
	if err != nil {
		return Identity{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
	}
	if id.TrustDomain != trustDomain {
		return Identity{}, fmt.Errorf("%w: certificate %q is for trust domain %q, want %q", ErrInvalidIdentity, cert.Subject.CommonName, id.TrustDomain, trustDomain)
	}
	return id, nil
}

// shortNamePrefix is how much of a name ShortName keeps; shortNameHashHex is the hex digits of the
// name's SHA-256 that follow it after "~" (64 bits: a collision between two names that share their first
// shortNamePrefix characters is not a practical concern).
const (
	shortNamePrefix  = 120
	shortNameHashHex = 16
)

// ShortName returns a bounded stand-in for an identity name in file names: the name's first 120
// characters, "~" and 16 hex digits of its SHA-256 (137 bytes at most). A name may be 253 characters,
// which with a prefix and suffix exceeds the 255 bytes a file name may have. "~" is not a name
// character, so a short name never equals a full one, and two names give the same short name only if
// their hashes collide.
func ShortName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return name[:min(len(name), shortNamePrefix)] + "~" + hex.EncodeToString(sum[:])[:shortNameHashHex]
}
