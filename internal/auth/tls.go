package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
)

// Files names the PEM files one side of an mTLS connection uses. All three are required.
type Files struct {
	// CertFile holds this side's certificate, leaf first, optionally followed by intermediates.
	CertFile string
	// KeyFile holds the private key of CertFile (PKCS#8, SEC 1 EC or PKCS#1 RSA). Keep it mode 0600.
	KeyFile string
	// CAFile holds the CA bundle (one or more certificates) that the peer's certificate must chain to.
	CAFile string
}

func (f Files) validate() error {
	switch {
	case f.CertFile == "":
		return errors.New("no certificate file given")
	case f.KeyFile == "":
		return errors.New("no key file given")
	case f.CAFile == "":
		return errors.New("no CA bundle file given")
	}
	return nil
}

// fileStamp is what a reload compares to decide whether a file changed. Size is included because
// some file systems have coarse modification times.
type fileStamp struct {
	modNanos int64
	size     int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path) // follows symlinks, so Kubernetes-style symlink swaps are seen
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{modNanos: fi.ModTime().UnixNano(), size: fi.Size()}, nil
}

// material is one loaded generation of certificate, key and CA bundle.
type material struct {
	cert *tls.Certificate
	pool *x509.CertPool
}

// reloader keeps the current material and reloads it when any file's stamp changes. A check costs
// three stat calls, once per handshake.
type reloader struct {
	files Files
	log   *slog.Logger

	mu      sync.Mutex
	cur     material
	stamps  [3]fileStamp
	lastErr string
}

func newReloader(files Files, logger *slog.Logger) (*reloader, error) {
	if err := files.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	r := &reloader{files: files, log: logger}
	stamps, err := r.stampAll()
	if err != nil {
		return nil, err
	}
	m, err := loadMaterial(files)
	if err != nil {
		return nil, err
	}
	r.cur, r.stamps = m, stamps
	return r, nil
}

func (r *reloader) stampAll() ([3]fileStamp, error) {
	var s [3]fileStamp
	for i, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.CAFile} {
		st, err := stamp(p)
		if err != nil {
			return s, fmt.Errorf("stat %s: %w", p, err)
		}
		s[i] = st
	}
	return s, nil
}

// get returns the current material, reloading it first if a file changed. A failed reload keeps the
// previous material and is logged once per distinct error.
func (r *reloader) get() material {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stampAll()
	if err == nil && stamps == r.stamps {
		return r.cur
	}
	var m material
	if err == nil {
		m, err = loadMaterial(r.files)
	}
	if err != nil {
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			r.log.Warn("tls reload failed; keeping the previous certificate and CA bundle",
				slog.String("cert_file", r.files.CertFile), slog.String("ca_file", r.files.CAFile), slog.String("err", msg))
		}
		return r.cur
	}
	r.cur, r.stamps, r.lastErr = m, stamps, ""
	r.log.Info("tls material reloaded", slog.String("cert_file", r.files.CertFile), slog.String("ca_file", r.files.CAFile),
		slog.String("subject", m.cert.Leaf.Subject.String()), slog.Time("not_after", m.cert.Leaf.NotAfter))
	return m
}

func loadMaterial(files Files) (material, error) {
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return material{}, fmt.Errorf("load key pair %s, %s: %w", files.CertFile, files.KeyFile, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return material{}, fmt.Errorf("parse %s: %w", files.CertFile, err)
		}
		cert.Leaf = leaf
	}
	pool, err := LoadCABundle(files.CAFile)
	if err != nil {
		return material{}, err
	}
	return material{cert: &cert, pool: pool}, nil
}

// LoadCABundle reads a PEM file of one or more CA certificates into a pool. It fails if the file holds
// no certificate or anything it cannot parse.
func LoadCABundle(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CA bundle %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ServerTLSConfig returns a TLS configuration for a gRPC server that presents files.CertFile and
// requires every client to present a certificate that chains to files.CAFile. The certificate, key
// and CA bundle are re-read at the first handshake after any of the files changes (modification time
// or size), so rotating them needs no restart; connections already open keep their certificates.
// TLS session tickets are off so every connection verifies its client certificate in full against
// the current CA bundle.
//
// A nil logger means slog.Default(). The files must load now; a later failed reload keeps the
// previous material and is logged.
func ServerTLSConfig(files Files, logger *slog.Logger) (*tls.Config, error) {
	r, err := newReloader(files, logger)
	if err != nil {
		return nil, fmt.Errorf("server tls config: %w", err)
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Every handshake gets a config built from the current material.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := r.get()
			return &tls.Config{
				MinVersion:             tls.VersionTLS12,
				NextProtos:             []string{"h2"},
				Certificates:           []tls.Certificate{*m.cert},
				ClientAuth:             tls.RequireAndVerifyClientCert,
				ClientCAs:              m.pool,
				SessionTicketsDisabled: true,
			}, nil
		},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		SessionTicketsDisabled: true,
	}
	return base, nil
}

// ClientTLSConfig returns a TLS configuration for a client (of gRPC or anything else) that presents
// files.CertFile and verifies the server's certificate against files.CAFile and serverName. The client
// certificate, key and CA bundle are re-read at the first handshake after any of the files changes.
//
// Because crypto/tls fixes RootCAs when a connection starts, the returned config sets
// InsecureSkipVerify and does the full standard verification itself in VerifyConnection, against the
// current CA bundle: chain, validity period, server-auth key usage and host name. The host name is
// serverName or, when that is empty, the SNI name the connection sent, which crypto/tls leaves empty
// for an IP address: so give serverName when dialling by IP. For gRPC prefer NewClientCredentials,
// which needs no such trick.
func ClientTLSConfig(files Files, serverName string, logger *slog.Logger) (*tls.Config, error) {
	r, err := newReloader(files, logger)
	if err != nil {
		return nil, fmt.Errorf("client tls config: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.get().cert, nil
		},
		InsecureSkipVerify: true, //nolint:gosec // verification is done in VerifyConnection against the reloaded CA bundle.
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := serverName
			if name == "" {
				name = cs.ServerName
			}
			return verifyServer(cs, name, r.get().pool)
		},
	}, nil
}

func verifyServer(cs tls.ConnectionState, serverName string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server presented no certificate")
	}
	if serverName == "" {
		return errors.New("tls: no server name to verify the server certificate against")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       serverName,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tls: verify server certificate: %w", err)
	}
	return nil
}

// NewServerCredentials returns gRPC transport credentials built on ServerTLSConfig.
func NewServerCredentials(files Files, logger *slog.Logger) (credentials.TransportCredentials, error) {
	cfg, err := ServerTLSConfig(files, logger)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// NewClientCredentials returns gRPC transport credentials for a client: each connection presents the
// current files.CertFile and verifies the server against the current files.CAFile (both re-read after
// they change) with crypto/tls's standard verification. The server name checked is serverName if not
// empty, else the host of the dialled address (an IP address is checked against the certificate's IP
// SANs).
func NewClientCredentials(files Files, serverName string, logger *slog.Logger) (credentials.TransportCredentials, error) {
	r, err := newReloader(files, logger)
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	return &clientCreds{r: r, serverName: serverName}, nil
}

// clientCreds builds a fresh crypto/tls client config from the reloader's current material for every
// handshake and hands the handshake to grpc's own TLS credentials.
type clientCreds struct {
	r          *reloader
	serverName string
}

var _ credentials.TransportCredentials = (*clientCreds)(nil)

func (c *clientCreds) config() *tls.Config {
	m := c.r.get()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: c.serverName,
		RootCAs:    m.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return m.cert, nil
		},
	}
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.config()).ClientHandshake(ctx, authority, rawConn)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("auth: client credentials cannot accept connections; use NewServerCredentials")
}

func (c *clientCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2", ServerName: c.serverName}
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{r: c.r, serverName: c.serverName}
}

// OverrideServerName implements the deprecated credentials.TransportCredentials method.
func (c *clientCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
