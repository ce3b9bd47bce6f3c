package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
)

const testTimeout = 10 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixture is a CA in a temporary directory and a collector serving on 127.0.0.1:0 with the health
// service and the three FlowFleet services (unimplemented: a call that passes authorisation ends in
// codes.Unimplemented).
type fixture struct {
	*pkitest.PKI
	addr string

	mu   sync.Mutex
	seen map[string]auth.Identity // full method → identity the handler chain saw
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{PKI: pkitest.New(t), seen: map[string]auth.Identity{}}
	f.issue(t, auth.RoleCollector, "collector1", false)

	creds, err := auth.NewServerCredentials(f.Files(auth.RoleCollector, "collector1"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer("", auth.DefaultPolicy(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context, method string) {
		if id, ok := auth.FromContext(ctx); ok {
			f.mu.Lock()
			f.seen[method] = id
			f.mu.Unlock()
		}
	}
	srv := grpc.NewServer(grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor(),
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				record(ctx, info.FullMethod)
				return h(ctx, req)
			}),
		grpc.ChainStreamInterceptor(authz.StreamServerInterceptor(),
			func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				record(ss.Context(), info.FullMethod)
				return h(srv, ss)
			}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	flowfleetv1.RegisterIngestServiceServer(srv, flowfleetv1.UnimplementedIngestServiceServer{})
	flowfleetv1.RegisterSampleServiceServer(srv, flowfleetv1.UnimplementedSampleServiceServer{})
	flowfleetv1.RegisterFleetServiceServer(srv, flowfleetv1.UnimplementedFleetServiceServer{})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return f
}

func (f *fixture) issue(t *testing.T, role auth.Role, name string, force bool) *pki.Leaf {
	t.Helper()
	leaf := f.Leaf(t, role, name, pki.IssueOptions{})
	if _, err := leaf.WriteFiles(f.Dir, force); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// dial connects with files; the connection is closed at the end of the test.
func (f *fixture) dial(t *testing.T, files auth.Files) *grpc.ClientConn {
	t.Helper()
	return dialAddr(t, f.addr, files)
}

func dialAddr(t *testing.T, addr string, files auth.Files) *grpc.ClientConn {
	t.Helper()
	creds, err := auth.NewClientCredentials(files, "", quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// call makes one call of each kind a test needs and returns its status.
func callHealth(t *testing.T, conn *grpc.ClientConn, opts ...grpc.CallOption) *status.Status {
	t.Helper()
	_, err := healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{}, opts...)
	return status.Convert(err)
}

func callListSamples(t *testing.T, conn *grpc.ClientConn) *status.Status {
	t.Helper()
	_, err := flowfleetv1.NewSampleServiceClient(conn).ListSamples(ctxT(t), &flowfleetv1.ListSamplesRequest{})
	return status.Convert(err)
}

func callListHosts(t *testing.T, conn *grpc.ClientConn) *status.Status {
	t.Helper()
	_, err := flowfleetv1.NewFleetServiceClient(conn).ListHosts(ctxT(t), &flowfleetv1.ListHostsRequest{})
	return status.Convert(err)
}

func callIngest(t *testing.T, conn *grpc.ClientConn) *status.Status {
	t.Helper()
	stream, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctxT(t))
	if err != nil {
		return status.Convert(err)
	}
	_, err = stream.Recv()
	return status.Convert(err)
}

func wantCode(t *testing.T, what string, st *status.Status, code codes.Code, msgParts ...string) {
	t.Helper()
	if st.Code() != code {
		t.Errorf("%s: code %v (%q), want %v", what, st.Code(), st.Message(), code)
		return
	}
	for _, p := range msgParts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("%s: message %q does not contain %q", what, st.Message(), p)
		}
	}
}

func TestRolesOverMTLS(t *testing.T) {
	f := newFixture(t)
	f.issue(t, auth.RoleSensor, "web01", false)
	f.issue(t, auth.RoleReader, "alice", false)
	f.issue(t, auth.RoleAdmin, "ops", false)
	sensor := f.dial(t, f.Files(auth.RoleSensor, "web01"))
	reader := f.dial(t, f.Files(auth.RoleReader, "alice"))
	admin := f.dial(t, f.Files(auth.RoleAdmin, "ops"))

	// Passing authorisation reaches the (unimplemented) handler.
	wantCode(t, "sensor Ingest", callIngest(t, sensor), codes.Unimplemented)
	wantCode(t, "sensor Health", callHealth(t, sensor), codes.OK)
	wantCode(t, "sensor ListSamples", callListSamples(t, sensor), codes.PermissionDenied,
		"spiffe://flowfleet.local/sensor/web01", "requires role reader or admin")
	wantCode(t, "sensor ListHosts", callListHosts(t, sensor), codes.PermissionDenied, "requires role reader or admin")

	wantCode(t, "reader Ingest", callIngest(t, reader), codes.PermissionDenied,
		"spiffe://flowfleet.local/reader/alice", "requires role sensor or admin")
	wantCode(t, "reader ListSamples", callListSamples(t, reader), codes.Unimplemented)
	wantCode(t, "reader ListHosts", callListHosts(t, reader), codes.Unimplemented)
	wantCode(t, "reader Health", callHealth(t, reader), codes.OK)

	wantCode(t, "admin Ingest", callIngest(t, admin), codes.Unimplemented)
	wantCode(t, "admin ListSamples", callListSamples(t, admin), codes.Unimplemented)

	// Handlers see the caller's identity, for unary and streaming calls.
	f.mu.Lock()
	defer f.mu.Unlock()
	if got, want := f.seen["/flowfleet.v1.IngestService/Ingest"], (auth.Identity{TrustDomain: "flowfleet.local", Role: auth.RoleAdmin, Name: "ops"}); got != want {
		// Admin called last, so the recorded identity is the admin's.
		t.Errorf("Ingest handler saw %+v, want %+v", got, want)
	}
	if got := f.seen["/grpc.health.v1.Health/Check"]; got.TrustDomain != "flowfleet.local" || got.Name == "" {
		t.Errorf("Health handler saw %+v", got)
	}
}

func TestRefusedCertificates(t *testing.T) {
	f := newFixture(t)
	t.Run("other CA", func(t *testing.T) {
		files := pkitest.New(t).Issue(t, auth.RoleAdmin, "mallory", pki.IssueOptions{})
		// The client trusts the real CA (so it accepts the server), but its own certificate is from
		// another CA: the server refuses it in the handshake.
		files.CAFile = f.CAFile()
		conn := f.dial(t, files)
		wantCode(t, "other-CA admin Health", callHealth(t, conn), codes.Unavailable)
		wantCode(t, "other-CA admin ListSamples", callListSamples(t, conn), codes.Unavailable)
	})

	t.Run("expired", func(t *testing.T) {
		conn := f.dial(t, f.Issue(t, auth.RoleAdmin, "expired", pki.IssueOptions{NotBefore: time.Now().Add(-72 * time.Hour), Days: 1}))
		wantCode(t, "expired admin Health", callHealth(t, conn), codes.Unavailable)
	})

	t.Run("no URI SAN", func(t *testing.T) {
		files := f.Raw(t, "nouri", nil)
		conn := f.dial(t, files)
		wantCode(t, "no-URI Health", callHealth(t, conn), codes.Unauthenticated, "no spiffe URI SAN")
		wantCode(t, "no-URI Ingest", callIngest(t, conn), codes.Unauthenticated, "no spiffe URI SAN")
	})

	t.Run("other trust domain", func(t *testing.T) {
		conn := f.dial(t, f.Issue(t, auth.RoleAdmin, "td", pki.IssueOptions{TrustDomain: "other.example"}))
		wantCode(t, "other-trust-domain ListSamples", callListSamples(t, conn), codes.Unauthenticated, `trust domain "other.example"`)
	})

	t.Run("server-auth only certificate as client", func(t *testing.T) {
		// A certificate without the client-auth extended key usage fails chain verification.
		files := f.Raw(t, "serveronly", func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			c.URIs = []*url.URL{auth.Identity{TrustDomain: "flowfleet.local", Role: auth.RoleAdmin, Name: "serveronly"}.URI()}
		})
		conn := f.dial(t, files)
		wantCode(t, "server-only Health", callHealth(t, conn), codes.Unavailable)
	})
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// serverSerial returns the serial number of the certificate the server presented on conn's last call.
func serverSerial(t *testing.T, conn *grpc.ClientConn) *big.Int {
	t.Helper()
	var p peer.Peer
	if st := callHealth(t, conn, grpc.Peer(&p)); st.Code() != codes.OK {
		t.Fatalf("Health: %v", st)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("peer auth info %T has no TLS certificate", p.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber
}

func TestServerCertificateRotation(t *testing.T) {
	f := newFixture(t)
	f.issue(t, auth.RoleReader, "alice", false)
	files := f.Files(auth.RoleReader, "alice")

	before := serverSerial(t, f.dial(t, files))
	rotated := f.issue(t, auth.RoleCollector, "collector1", true) // atomic replace of cert and key
	after := serverSerial(t, f.dial(t, files))                    // a new connection, same server
	if before.Cmp(rotated.Cert.SerialNumber) == 0 {
		t.Fatal("test setup: rotated certificate has the old serial")
	}
	if after.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation the server presented serial %v, want the new certificate's %v (old was %v)",
			after, rotated.Cert.SerialNumber, before)
	}
}

func TestCABundleRotation(t *testing.T) {
	f := newFixture(t)
	// A second CA, not yet trusted by the server.
	newCA := pkitest.New(t)
	files := newCA.Issue(t, auth.RoleReader, "bob", pki.IssueOptions{})
	caFile := f.CAFile()
	files.CAFile = caFile // client trusts the old CA (server's)
	wantCode(t, "before CA rotation", callHealth(t, f.dial(t, files)), codes.Unavailable)

	// Append the new CA to the server's bundle (old and new both trusted during a migration).
	old, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(append([]byte{}, old...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newCA.CA.Cert.Raw})...)
	tmp := caFile + ".new"
	writeFile(t, tmp, bundle, 0o644)
	if err := os.Rename(tmp, caFile); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "after CA rotation", callListSamples(t, f.dial(t, files)), codes.Unimplemented)
}

func TestClientVerifiesServer(t *testing.T) {
	f := newFixture(t)
	f.issue(t, auth.RoleReader, "alice", false)
	_, port, err := net.SplitHostPort(f.addr)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("name not in certificate", func(t *testing.T) {
		// The collector certificate is for localhost and 127.0.0.1. Dialling 127.0.0.1 with a server
		// name override makes the client check that name instead.
		creds, err := auth.NewClientCredentials(f.Files(auth.RoleReader, "alice"), "collector.example.net", quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", port), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		st := callHealth(t, conn)
		wantCode(t, "wrong server name", st, codes.Unavailable, "collector.example.net")
	})

	t.Run("untrusted server", func(t *testing.T) {
		files := f.Files(auth.RoleReader, "alice")
		files.CAFile = pkitest.New(t).CAFile()
		wantCode(t, "untrusted server", callHealth(t, f.dial(t, files)), codes.Unavailable, "certificate")
	})

	t.Run("plain tls.Config", func(t *testing.T) {
		for _, tc := range []struct {
			serverName string
			want       codes.Code
		}{{"localhost", codes.OK}, {"collector.example.net", codes.Unavailable}} {
			cfg, err := auth.ClientTLSConfig(f.Files(auth.RoleReader, "alice"), tc.serverName, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, "ClientTLSConfig "+tc.serverName, callHealth(t, conn), tc.want)
			_ = conn.Close()
		}
	})

	t.Run("localhost name", func(t *testing.T) {
		conn := dialAddr(t, net.JoinHostPort("localhost", port), f.Files(auth.RoleReader, "alice"))
		// localhost may resolve to ::1 first, where nothing listens; gRPC then tries 127.0.0.1.
		wantCode(t, "localhost", callHealth(t, conn), codes.OK)
	})
}

func TestTLSConfigs(t *testing.T) {
	f := newFixture(t)
	files := f.Files(auth.RoleCollector, "collector1")
	cfg, err := auth.ServerTLSConfig(files, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientAuth != tls.RequireAndVerifyClientCert || got.ClientCAs == nil || !got.SessionTicketsDisabled ||
		len(got.Certificates) != 1 || len(got.NextProtos) != 1 || got.NextProtos[0] != "h2" || got.MinVersion < tls.VersionTLS12 {
		t.Errorf("per-connection server config: ClientAuth=%v ClientCAs=%v tickets disabled=%v certs=%d NextProtos=%v MinVersion=%x",
			got.ClientAuth, got.ClientCAs != nil, got.SessionTicketsDisabled, len(got.Certificates), got.NextProtos, got.MinVersion)
	}

	// A reload that fails (here: the key no longer matches the certificate) keeps the old material.
	orig, err := os.ReadFile(files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	other := f.Leaf(t, auth.RoleCollector, "other", pki.IssueOptions{})
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, files.KeyFile, append(otherKey, '\n'), 0o600) // new size, so the change is seen
	again, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Certificates) != 1 || string(again.Certificates[0].Certificate[0]) != string(got.Certificates[0].Certificate[0]) {
		t.Error("a failed reload replaced the server certificate")
	}
	writeFile(t, files.KeyFile, orig, 0o600)

	dir := t.TempDir()
	if _, err := auth.ClientTLSConfig(auth.Files{CertFile: filepath.Join(dir, "x.pem"), KeyFile: filepath.Join(dir, "x-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}, "", nil); err == nil {
		t.Error("ClientTLSConfig with missing files succeeded")
	}
	if _, err := auth.ServerTLSConfig(auth.Files{}, nil); err == nil {
		t.Error("ServerTLSConfig with no files succeeded")
	}
	empty := filepath.Join(dir, "empty.pem")
	writeFile(t, empty, []byte("no pem here\n"), 0o644)
	if _, err := auth.LoadCABundle(empty); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("LoadCABundle(empty) error = %v", err)
	}
}

func TestClientCertificateRotation(t *testing.T) {
	f := newFixture(t)
	f.issue(t, auth.RoleReader, "alice", false)
	files := f.Files(auth.RoleReader, "alice")
	creds, err := auth.NewClientCredentials(files, "", quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	newConn := func() *grpc.ClientConn {
		conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	wantCode(t, "reader before rotation", callListSamples(t, newConn()), codes.Unimplemented)

	// Replace the files behind the same credentials with a sensor certificate: the next connection
	// presents it, and the server now refuses the reader method.
	sensor := f.Leaf(t, auth.RoleSensor, "alice", pki.IssueOptions{})
	keyPEM, err := sensor.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, files.KeyFile, keyPEM, 0o600)
	writeFile(t, files.CertFile, sensor.CertPEM(), 0o644)
	wantCode(t, "after rotation", callListSamples(t, newConn()), codes.PermissionDenied, "spiffe://flowfleet.local/sensor/alice")
}
