// Command watch prints the samples a FlowFleet collector writes, as it writes them, with
// SampleService.WatchSamples over mutual TLS and a reader certificate. It is an example of a Go client
// that uses only the generated package github.com/flowfleet/flowfleet/gen/flowfleet/v1, grpc-go and
// crypto/tls.
//
//	go run ./examples/go/watch --addr 127.0.0.1:7443 --ca pki/ca.pem \
//	    --cert pki/reader-alice.pem --key pki/reader-alice-key.pem
//
// Each sample whose .bf has just been written gives one line:
//
//	2025-06-01T12:05:03Z  written  web01_1748779200  host=web01  window=2025-06-01T12:00:00Z  rev=1  flows=5  bytes=1345  file=web01_1748779200.bf
//
// --all prints every event the collector sends instead (written, relayed, relay failed, …) with the previous
// state; --existing first lists the samples already written (WatchSamples has no backlog, so the stream
// is opened before the listing and a sample written in between may be printed twice). When the
// collector shuts down (UNAVAILABLE) the watch reconnects with backoff; Ctrl-C stops it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "watch:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, ca, cert, key, serverName, host string
	all, existing                         bool
}

// run parses args, connects and watches until ctx is done (nil) or an error other than UNAVAILABLE.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:7443", "collector address, host:port")
	fs.StringVar(&o.ca, "ca", "", "the fleet's CA bundle, ca.pem (required)")
	fs.StringVar(&o.cert, "cert", "", "client certificate with role reader or admin, PEM (required)")
	fs.StringVar(&o.key, "key", "", "the client certificate's private key, PEM (required)")
	fs.StringVar(&o.serverName, "server-name", "", "name to verify the collector's certificate against (default: the host in --addr)")
	fs.StringVar(&o.host, "host", "", "only samples of this sensor host")
	fs.BoolVar(&o.all, "all", false, "print every sample event, not only samples being written")
	fs.BoolVar(&o.existing, "existing", false, "first list the samples already written")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.ca == "" || o.cert == "" || o.key == "" {
		fs.Usage()
		return errors.New("--ca, --cert and --key are required (a reader certificate: flowctl certs issue --role reader --name NAME)")
	}
	creds, err := transportCredentials(o)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flowfleetv1.NewSampleServiceClient(conn)

	const maxBackoff = 30 * time.Second
	backoff := time.Second
	for {
		err := watch(ctx, client, o, stdout, func() { backoff = time.Second })
		if ctx.Err() != nil {
			return nil
		}
		if status.Code(err) != codes.Unavailable {
			return err
		}
		fmt.Fprintf(stderr, "watch: %v; reconnecting in %s\n", err, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// transportCredentials presents the client certificate and verifies the collector's certificate against
// the CA bundle and o.serverName, or the host of the address dialled when that is empty (an IP address
// is checked against the certificate's IP addresses).
func transportCredentials(o options) (credentials.TransportCredentials, error) {
	pair, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate", o.ca)
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		RootCAs:      roots,
		ServerName:   o.serverName,
	}), nil
}

// watch runs one WatchSamples stream until it ends; connected is called once the first message or the
// listing arrives, so the caller can reset its backoff.
func watch(ctx context.Context, client flowfleetv1.SampleServiceClient, o options, out io.Writer, connected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchSamples(ctx, &flowfleetv1.WatchSamplesRequest{Host: o.host})
	if err != nil {
		return err
	}
	if o.existing {
		if err := listWritten(ctx, client, o.host, out); err != nil {
			return err
		}
		connected()
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return status.Error(codes.Unavailable, "stream ended")
			}
			return err
		}
		connected()
		switch m := resp.GetMessage().(type) {
		case *flowfleetv1.WatchSamplesResponse_Event:
			ev := m.Event
			if o.all {
				fmt.Fprintf(out, "%s  %s -> %s  %s\n", eventTime(ev.GetTime()), state(ev.GetPreviousState()),
					state(ev.GetSample().GetState()), formatSample(ev.GetSample()))
			} else if ev.GetSample().GetState() == flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN {
				fmt.Fprintf(out, "%s  written  %s\n", eventTime(ev.GetTime()), formatSample(ev.GetSample()))
			}
		case *flowfleetv1.WatchSamplesResponse_EventsLost:
			l := m.EventsLost
			fmt.Fprintf(out, "%s  lost %d events (from %s): this client read too slowly; ListSamples shows the current state\n",
				eventTime(l.GetLastTime()), l.GetCount(), eventTime(l.GetFirstTime()))
		}
	}
}

// listWritten prints every sample in state WRITTEN, newest first, following next_page_token.
func listWritten(ctx context.Context, client flowfleetv1.SampleServiceClient, host string, out io.Writer) error {
	req := &flowfleetv1.ListSamplesRequest{Host: host, State: flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN}
	for {
		resp, err := client.ListSamples(ctx, req)
		if err != nil {
			return err
		}
		for _, s := range resp.GetSamples() {
			fmt.Fprintf(out, "%s  existing  %s\n", eventTime(s.GetUpdateTime()), formatSample(s))
		}
		if resp.GetNextPageToken() == "" {
			return nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func formatSample(s *flowfleetv1.Sample) string {
	return fmt.Sprintf("%s  host=%s  window=%s  rev=%d  flows=%d  bytes=%d  file=%s", s.GetId(), s.GetHost(),
		time.Unix(s.GetWindowStart(), 0).UTC().Format(time.RFC3339), s.GetRevision(), s.GetFlowCount(), s.GetBytes(),
		orDash(s.GetFileName()))
}

// eventTime formats a timestamp as RFC 3339 UTC, "-" when unset.
func eventTime(ts *timestamppb.Timestamp) string {
	if ts == nil || !ts.IsValid() {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// state turns SAMPLE_STATE_RELAY_FAILED into "relay_failed" (SAMPLE_STATE_UNSPECIFIED, the previous
// state of a new sample, into "new").
func state(s flowfleetv1.SampleState) string {
	if s == flowfleetv1.SampleState_SAMPLE_STATE_UNSPECIFIED {
		return "new"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "SAMPLE_STATE_"))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
