package ctl

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
)

// newCertsCommand returns the `certs` command with its `init` and `issue` subcommands. It reads no global
// state, so each call gives an independent command tree (tests build a fresh one per case).
func newCertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create the FlowFleet CA and issue mTLS certificates",
		Long: `Create the FlowFleet certificate authority and issue the certificates that sensors, readers,
admins and collectors use for mutual TLS.

Every certificate carries one URI SAN, spiffe://<trust-domain>/<role>/<name>, and that is
the holder's identity: a sensor's host name is the <name> of its certificate. Roles:
  sensor     may stream flows to a collector (IngestService)
  reader     may query samples and hosts (SampleService, FleetService)
  admin      may do both
  collector  a collector's server certificate (DNS/IP names for clients to verify)

Files in --dir: ca.pem, ca-key.pem, <role>-<name>.pem, <role>-<name>-key.pem.
Private keys are written mode 0600 and never overwritten without --force.
Never commit a private key. certs/README.md shows the same steps with openssl.`,
		Example: `  flowctl certs init --dir /etc/flowfleet/pki
  flowctl certs issue --dir /etc/flowfleet/pki --role collector --name collector1 --dns collector.example.net
  flowctl certs issue --dir /etc/flowfleet/pki --role sensor --name web01
  flowctl certs issue --dir /etc/flowfleet/pki --role reader --name alice --days 30`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newInitCommand(), newIssueCommand())
	return cmd
}

func newInitCommand() *cobra.Command {
	var opts pki.InitOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new certificate authority (ca.pem, ca-key.pem)",
		Long: `Create a new ECDSA P-256 certificate authority in --dir: ca.pem (the certificate every
sensor, client and collector must be given) and ca-key.pem (the signing key, mode 0600:
keep it offline if you can; only "flowctl certs issue" needs it).

The CA records the trust domain in a URI SAN (spiffe://<trust-domain>); "issue" uses it
as the default. Fails if ca.pem or ca-key.pem exists, unless --force is given: replacing
the CA makes every certificate it issued untrusted.`,
		Example:      `  flowctl certs init --dir ./pki --trust-domain fleet.example.net`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := pki.InitCA(opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created CA %q for trust domain %s, valid until %s\n",
				ca.Cert.Subject.CommonName, ca.TrustDomain, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(out, "  certificate: %s\n  private key: %s (mode 0600; never commit it)\n",
				filepath.Join(opts.Dir, pki.CACertFile), filepath.Join(opts.Dir, pki.CAKeyFile))
			fmt.Fprintf(out, "next: flowctl certs issue --dir %s --role collector --name <name> [--dns <host>] [--ip <addr>]\n", opts.Dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", ".", "directory to write ca.pem and ca-key.pem into (created, mode 0700, if missing)")
	f.StringVar(&opts.TrustDomain, "trust-domain", auth.DefaultTrustDomain, "SPIFFE trust domain recorded in the CA, [a-z0-9._-]")
	f.StringVar(&opts.CommonName, "common-name", "", `subject common name of the CA (default "FlowFleet CA (<trust domain>)")`)
	f.IntVar(&opts.Days, "days", pki.DefaultCADays, fmt.Sprintf("days the CA is valid, 1–%d", pki.MaxDays))
	f.BoolVar(&opts.Force, "force", false, "replace an existing CA (every certificate it issued stops being trusted)")
	return cmd
}

func newIssueCommand() *cobra.Command {
	var (
		dir, outDir, role string
		ipTexts           []string
		force             bool
		opts              pki.IssueOptions
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate for a sensor, reader, admin or collector",
		Long: `Issue an ECDSA P-256 certificate signed by the CA in --dir, with the URI SAN
spiffe://<trust-domain>/<role>/<name>, and write <role>-<name>.pem and
<role>-<name>-key.pem (mode 0600) into --out (default: --dir).

Sensor, reader and admin certificates are client certificates. A collector certificate is
a server certificate: clients check the name they dial against its --dns and --ip names
(default localhost and 127.0.0.1), so list every name and address sensors use.

For a sensor, --name is the host name its flows and samples are filed under.
Fails if either output file exists, unless --force is given.`,
		Example: `  flowctl certs issue --dir ./pki --role sensor --name web01
  flowctl certs issue --dir ./pki --role collector --name c1 --dns collector.example.net --ip 10.0.0.5
  flowctl certs issue --dir ./pki --role admin --name ops --days 90 --out ~/.config/flowfleet`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			opts.Role = r
			for _, t := range ipTexts {
				ip := net.ParseIP(strings.TrimSpace(t))
				if ip == nil {
					return fmt.Errorf("--ip: %q is not an IP address", t)
				}
				opts.IPAddresses = append(opts.IPAddresses, ip)
			}
			if r != auth.RoleCollector && (len(opts.DNSNames) > 0 || len(opts.IPAddresses) > 0) {
				return errors.New("--dns and --ip apply to --role collector only")
			}
			ca, err := pki.LoadCA(dir)
			if err != nil {
				return fmt.Errorf("%w (create one with: flowctl certs init --dir %s)", err, dir)
			}
			leaf, err := ca.Issue(opts)
			if err != nil {
				return err
			}
			if outDir == "" {
				outDir = dir
			}
			p, err := leaf.WriteFiles(outDir, force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "issued %s, valid until %s\n", leaf.Identity, leaf.Cert.NotAfter.UTC().Format(time.DateOnly))
			if len(leaf.Cert.DNSNames) > 0 || len(leaf.Cert.IPAddresses) > 0 {
				fmt.Fprintf(out, "  server names: %s\n", serverNames(leaf))
			}
			fmt.Fprintf(out, "  certificate: %s\n  private key: %s (mode 0600; never commit it)\n  CA bundle:   %s\n",
				p.Cert, p.Key, filepath.Join(dir, pki.CACertFile))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory holding ca.pem and ca-key.pem")
	f.StringVar(&outDir, "out", "", "directory to write the certificate and key into (default: --dir)")
	f.StringVar(&role, "role", "", "role of the holder: sensor, reader, admin or collector (required)")
	f.StringVar(&opts.Name, "name", "", "name of the holder, 1–253 characters of [A-Za-z0-9._-]; a sensor's host name (required)")
	f.StringVar(&opts.TrustDomain, "trust-domain", "", "SPIFFE trust domain (default: the CA's, else "+auth.DefaultTrustDomain+")")
	f.StringSliceVar(&opts.DNSNames, "dns", nil, "DNS name the collector is reached by; repeatable or comma-separated (collector only; default localhost)")
	f.StringSliceVar(&ipTexts, "ip", nil, "IP address the collector is reached by; repeatable or comma-separated (collector only; default 127.0.0.1)")
	f.IntVar(&opts.Days, "days", pki.DefaultLeafDays, fmt.Sprintf("days the certificate is valid, 1–%d and not past the CA's expiry", pki.MaxDays))
	f.BoolVar(&force, "force", false, "replace an existing certificate and key of the same role and name")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func serverNames(l *pki.Leaf) string {
	var names []string
	names = append(names, l.Cert.DNSNames...)
	for _, ip := range l.Cert.IPAddresses {
		names = append(names, ip.String())
	}
	return strings.Join(names, ", ")
}
