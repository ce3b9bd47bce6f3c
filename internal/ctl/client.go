package ctl

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowfleet/flowfleet/internal/auth"
)

// addConnFlags adds the flags every collector query needs.
func addConnFlags(cmd *cobra.Command) {
	addTargetFlags(cmd, "localhost:7443")
	cmd.Flags().Duration("timeout", 10*time.Second, "time limit for one request")
}

// addTargetFlags adds the flags that name the collector and the client certificate (clientKeys but
// timeout), with the given default address.
func addTargetFlags(cmd *cobra.Command, collector string) {
	f := cmd.Flags()
	f.String("collector", collector, "collector address (host:port)")
	f.String("cert", "", "client certificate (PEM) with role reader or admin")
	f.String("key", "", "client private key (PEM)")
	f.String("ca", "", "the fleet's CA certificate (PEM)")
	f.String("server-name", "", "name to verify the collector's certificate against (default: the host of --collector)")
}

// dial connects to the collector with the client certificate.
func dial(vp *viper.Viper) (*grpc.ClientConn, string, error) {
	addr := vp.GetString("collector")
	files := auth.Files{CertFile: vp.GetString("cert"), KeyFile: vp.GetString("key"), CAFile: vp.GetString("ca")}
	for _, fp := range [][2]string{{"--cert", files.CertFile}, {"--key", files.KeyFile}, {"--ca", files.CAFile}} {
		if fp[1] == "" {
			return nil, addr, fmt.Errorf("%s is required to reach the collector (or FLOWFLEET_%s, or the config file)", fp[0], strings.ToUpper(strings.TrimPrefix(fp[0], "--")))
		}
	}
	if err := checkValidity(files.CertFile, time.Now()); err != nil {
		return nil, addr, err
	}
	serverName := vp.GetString("server-name")
	if serverName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, addr, fmt.Errorf("--collector %q: %w", addr, err)
		}
		serverName = host
	}
	creds, err := auth.NewClientCredentials(files, serverName, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, addr, fmt.Errorf("client certificate: %w", err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, addr, fmt.Errorf("collector %s: %w", addr, err)
	}
	return conn, addr, nil
}

// checkValidity reports a client certificate that is expired or not yet valid before any connection is
// made: the collector would only close the connection, which says nothing useful.
func checkValidity(certFile string, now time.Time) error {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("--cert: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("--cert %s: no PEM certificate in the file", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("--cert %s: %w", certFile, err)
	}
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("the client certificate %s expired on %s: issue a new one with flowctl certs issue", certFile, cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("the client certificate %s is not valid before %s: check this machine's clock", certFile, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// friendly explains the errors a first user meets.
func friendly(err error, addr string) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		switch {
		case strings.Contains(msg, "connection refused"):
			return fmt.Errorf("no collector is listening at %s (connection refused): is it running, and is --collector right?", addr)
		case strings.Contains(msg, "certificate signed by unknown authority"), strings.Contains(msg, "unknown certificate authority"):
			return fmt.Errorf("the collector at %s and this client do not trust each other's certificates: check that --ca is the fleet's CA and that the certificates come from it (%s)", addr, msg)
		case strings.Contains(msg, "expired"):
			return fmt.Errorf("a certificate has expired: issue a new one with flowctl certs issue (%s)", msg)
		case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "certificate required"),
			strings.Contains(msg, "broken pipe"), strings.Contains(msg, "connection reset"):
			return fmt.Errorf("the collector at %s refused this client's certificate: is it issued by the fleet's CA and still valid? (%s)", addr, msg)
		}
		return fmt.Errorf("collector %s unavailable: %s", addr, msg)
	case codes.PermissionDenied:
		return fmt.Errorf("permission denied: %s (queries need a certificate with role reader or admin)", msg)
	case codes.Unauthenticated:
		return fmt.Errorf("the collector did not accept this client's identity: %s", msg)
	case codes.DeadlineExceeded:
		return fmt.Errorf("the collector at %s did not answer in time", addr)
	}
	return errors.New(msg)
}

func timeoutCtx(ctx context.Context, vp *viper.Viper) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, vp.GetDuration("timeout"))
}

func timeoutCtxFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
