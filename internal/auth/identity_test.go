package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return u
}

func TestParseURI(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen)
	tests := []struct {
		uri     string
		want    Identity
		wantErr string
	}{
		{uri: "spiffe://flowfleet.local/sensor/web01", want: Identity{"flowfleet.local", RoleSensor, "web01"}},
		{uri: "spiffe://flowfleet.local/reader/alice.b_c-d", want: Identity{"flowfleet.local", RoleReader, "alice.b_c-d"}},
		{uri: "spiffe://flowfleet.local/admin/" + long, want: Identity{"flowfleet.local", RoleAdmin, long}},
		{uri: "spiffe://example.org/collector/c1", want: Identity{"example.org", RoleCollector, "c1"}},
		{uri: "spiffe://flowfleet.local/admin/" + long + "a", wantErr: "1–253"},
		{uri: "https://flowfleet.local/sensor/web01", wantErr: "not a spiffe URI"},
		{uri: "spiffe://flowfleet.local/root/web01", wantErr: "unknown role"},
		{uri: "spiffe://flowfleet.local/sensor", wantErr: "path must be"},
		{uri: "spiffe://flowfleet.local/sensor/web01/x", wantErr: "path must be"},
		{uri: "spiffe://flowfleet.local/sensor/", wantErr: "1–253"},
		{uri: "spiffe://flowfleet.local/sensor/..", wantErr: "not allowed"},
		{uri: "spiffe://flowfleet.local/sensor/we%2Fb", wantErr: "canonical form"},
		{uri: "spiffe://flowfleet.local/sensor/we%41b", wantErr: "canonical form"},
		{uri: "spiffe://flowfleet.local/sensor/web 01", wantErr: "canonical form"},
		{uri: "spiffe://flowfleet.local/sensor/web~01", wantErr: "allowed are"},
		{uri: "spiffe://flowfleet.local:8443/sensor/web01", wantErr: "only"},
		{uri: "spiffe://u@flowfleet.local/sensor/web01", wantErr: "only"},
		{uri: "spiffe://flowfleet.local/sensor/web01?x=1", wantErr: "only"},
		{uri: "spiffe://flowfleet.local/sensor/web01#f", wantErr: "only"},
		{uri: "spiffe://FlowFleet.local/sensor/web01", wantErr: "trust domain"},
		{uri: "spiffe:///sensor/web01", wantErr: "trust domain"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := ParseURI(mustURL(t, tt.uri))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURI(%q) error = %v, want one containing %q", tt.uri, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidIdentity) {
					t.Errorf("error %v does not wrap ErrInvalidIdentity", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURI(%q): %v", tt.uri, err)
			}
			if got != tt.want {
				t.Fatalf("ParseURI(%q) = %+v, want %+v", tt.uri, got, tt.want)
			}
			if s := got.String(); s != tt.uri {
				t.Errorf("round trip: String() = %q, want %q", s, tt.uri)
			}
		})
	}
}

func TestFromCertificate(t *testing.T) {
	cert := func(uris ...string) *x509.Certificate {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: "x"}}
		for _, u := range uris {
			c.URIs = append(c.URIs, mustURL(t, u))
		}
		return c
	}
	tests := []struct {
		name    string
		cert    *x509.Certificate
		want    Identity
		wantErr string
	}{
		{name: "one spiffe", cert: cert("spiffe://flowfleet.local/sensor/web01"), want: Identity{"flowfleet.local", RoleSensor, "web01"}},
		{name: "other schemes ignored", cert: cert("https://example.org/x", "spiffe://flowfleet.local/reader/r1"), want: Identity{"flowfleet.local", RoleReader, "r1"}},
		{name: "no URI", cert: cert(), wantErr: "no spiffe URI SAN"},
		{name: "only other schemes", cert: cert("urn:x:y"), wantErr: "no spiffe URI SAN"},
		{name: "two spiffe", cert: cert("spiffe://flowfleet.local/sensor/a", "spiffe://flowfleet.local/sensor/b"), wantErr: "exactly one"},
		{name: "other trust domain", cert: cert("spiffe://evil.example/sensor/web01"), wantErr: `trust domain "evil.example"`},
		{name: "nil", cert: nil, wantErr: "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromCertificate(tt.cert, DefaultTrustDomain)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidIdentity) {
					t.Fatalf("error = %v, want ErrInvalidIdentity containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FromCertificate = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles() {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "*", "Sensor", "root"} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) succeeded", s)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	const (
		ingest = "/flowfleet.v1.IngestService/Ingest"
		list   = "/flowfleet.v1.SampleService/ListSamples"
		hosts  = "/flowfleet.v1.FleetService/ListHosts"
		health = "/grpc.health.v1.Health/Check"
		refl   = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
		other  = "/other.v1.Secret/Get"
	)
	allowed := map[Role][]string{
		RoleSensor:    {ingest, health, refl},
		RoleReader:    {list, hosts, health, refl},
		RoleAdmin:     {ingest, list, hosts, health, refl},
		RoleCollector: {health, refl},
	}
	for role, ok := range allowed {
		for _, m := range []string{ingest, list, hosts, health, refl, other} {
			err := p.Allow(role, m)
			want := false
			for _, a := range ok {
				want = want || a == m
			}
			if (err == nil) != want {
				t.Errorf("Allow(%s, %s) = %v, want allowed=%v", role, m, err, want)
			}
		}
	}
	err := p.Allow(RoleSensor, list)
	if err == nil || !strings.Contains(err.Error(), "requires role reader or admin") {
		t.Errorf("sensor on ListSamples: error %v does not name the required roles", err)
	}
	// An exact rule wins over its service's wildcard.
	p["/flowfleet.v1.SampleService/GetSample"] = []Role{RoleSensor}
	if err := p.Allow(RoleSensor, "/flowfleet.v1.SampleService/GetSample"); err != nil {
		t.Errorf("exact rule: %v", err)
	}
	if err := p.Allow(RoleReader, "/flowfleet.v1.SampleService/GetSample"); err == nil {
		t.Error("exact rule did not override the service rule")
	}
}

// ShortName bounds a name for file names, keeps names apart that share their first 120 characters, and
// never gives a valid name.
func TestShortName(t *testing.T) {
	a, b := strings.Repeat("a", 200)+".example", strings.Repeat("a", 200)+".example2"
	sa, sb := ShortName(a), ShortName(b)
	if len(sa) != 137 || len(ShortName(strings.Repeat("z", MaxNameLen))) != 137 {
		t.Errorf("ShortName(%d chars) has %d bytes, want 137", len(a), len(sa))
	}
	if sa == sb {
		t.Errorf("two names with the same prefix share the short name %q", sa)
	}
	if ShortName(a) != sa {
		t.Error("ShortName is not deterministic")
	}
	if !strings.HasPrefix(sa, a[:120]+"~") || ValidateName(sa) == nil {
		t.Errorf("ShortName(%q) = %q: want the first 120 characters, \"~\", and a string that is no valid name", a, sa)
	}
}
