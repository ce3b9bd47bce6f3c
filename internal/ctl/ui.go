package ctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/ui"
)

func newUICommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve a local web console for the collector (fleet, hosts, samples, flows)",
		Long: `ui serves a web console on this machine. It talks to the collector with your own client
certificate, so the collector needs no browser-facing listener and your certificate's role decides what
the console may do (re-relay and enrich need an admin certificate).

It listens on loopback (127.0.0.1:8080) by default. Another address needs --allow-remote, and then every
visitor must present a random access token that is printed at start (open the printed URL once). See
docs/ui.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUI(cmd, vp) },
	}
	addConnFlags(cmd)
	f := cmd.Flags()
	f.String("listen", "127.0.0.1:8080", "address the console listens on (host:port)")
	f.Bool("open", false, "open the console in the default browser")
	f.Bool("allow-remote", false, "allow a non-loopback --listen address (an access token is then required)")
	return cmd
}

// isLoopback reports whether a listen host only accepts connections from this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func runUI(cmd *cobra.Command, vp *viper.Viper) error {
	listen := vp.GetString("listen")
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	var token string
	if !isLoopback(host) {
		if !vp.GetBool("allow-remote") {
			return fmt.Errorf("--listen %s is not a loopback address: anyone who can reach it would use your certificate; add --allow-remote to require an access token", listen)
		}
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("access token: %w", err)
		}
		token = hex.EncodeToString(b)
	}
	conn, addr, err := dial(vp)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flowfleetv1.NewSampleServiceClient(conn)
	srv, err := ui.New(ui.Options{Conn: conn, Token: token, Timeout: vp.GetDuration("timeout"),
		Log: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
		Label: func(_ context.Context, id string, content []byte) ([]byte, error) {
			return labelContent(cmd, client, vp, addr, id, content)
		}})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	url := "http://" + lis.Addr().String() + "/"
	if token != "" {
		url += "?token=" + token
	}
	fmt.Fprintf(cmd.OutOrStdout(), "flowctl ui: %s (collector %s)\n", url, addr)
	if vp.GetBool("open") {
		openBrowser(cmd, url)
	}
	// Request contexts end with the command's, so open event streams stop on Ctrl-C.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return cmd.Context() }}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(lis) }()
	select {
	case err := <-done:
		return err
	case <-cmd.Context().Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openBrowser starts the platform's URL opener; failing is only reported.
func openBrowser(cmd *cobra.Command, url string) {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	if err := exec.Command(name, url).Start(); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "could not open a browser (%v); open %s yourself\n", err, url)
	}
}
