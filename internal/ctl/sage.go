package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/internal/relay/sagefake"
)

const sageKeyHelp = `The API key comes from --networksage-api-key-file, else FLOWFLEET_NETWORKSAGE_API_KEY, else
networksage-api-key in the config file (--config). No flag takes the key itself, so that it never shows
in a process list or a shell history.`

func newSageCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sage",
		Short: "Talk to NetworkSage directly: every endpoint of its API, and a fake of it",
		Long: `Call the NetworkSage API (https://api.seclarity.io) as the collector's relay does, with this
machine's API key: upload a BayseFlow file, list the account's uploads, read a sample's metadata, wait
until it is processed, read its enriched flows, its aggregated view, its summary and categorization
(and request them), a flow's global count, a destination's metadata, behaviours and events, and a public
sample's aggregated view (no key). "flowctl sage fake" runs a FAKE of the API for trying these commands
and the relay without an account.

` + sageKeyHelp,
	}
	pf := cmd.PersistentFlags()
	pf.String("networksage-url", relay.DefaultBaseURL, "NetworkSage API base URL (plain http only to a loopback address)")
	pf.String("networksage-api-key-file", "", "file holding the NetworkSage API key")
	pf.Duration("timeout", relay.DefaultTimeout, "time limit for one request (an upload also gets time for its size)")

	upload := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a file (a .bf sample by default) and print its sampleId",
		Example: `  flowctl sage upload web01_1700000000.bf
  flowctl sage upload --type pcap capture.pcap`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSageUpload(cmd, vp, args[0]) },
	}
	upload.Flags().String("type", relay.DefaultType, "upload type: secflow, pcap, pcapng, zeek or interflow")
	upload.Flags().String("file-name", "", "name to upload the file under (default: its base name)")
	upload.Flags().StringP("output", "o", "table", "output: table or json")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the account's uploads",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runSageList(cmd, vp) },
	}
	list.Flags().StringP("output", "o", "table", "output: table or json")

	sample := &cobra.Command{
		Use:   "sample SAMPLE_ID",
		Short: "Show a sample's metadata and whether NetworkSage has processed it",
		Example: `  flowctl sage sample 00dc397c3f85472b9c7f4203c408e4fb
  flowctl sage sample --wait 3m 00dc397c3f85472b9c7f4203c408e4fb`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSageSample(cmd, vp, args[0]) },
	}
	sample.Flags().Duration("wait", 0, "ask every --poll-interval until the sample is processed, for at most this long")
	sample.Flags().Duration("poll-interval", 15*time.Second, "with --wait, how often to ask (at least 15s, as NetworkSage's own clients)")
	sample.Flags().StringP("output", "o", "table", "output: table or json")

	flows := &cobra.Command{
		Use:   "flows SAMPLE_ID",
		Short: "List a processed sample's enriched flows",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runSageFlows(cmd, vp, args[0]) },
	}
	flows.Flags().StringP("output", "o", "table", "output: table or json")

	fake := &cobra.Command{
		Use:   "fake",
		Short: "Run a FAKE NetworkSage API for tests (it analyses nothing)",
		Long: `Run sagefake, a fake of the documented NetworkSage API, until interrupted. It checks the apikey
header, validates uploads, gives each accepted upload a new sampleId, lists uploads, reports a sample
processed after --processing-delay, and serves every enrichment endpoint with values from a fixed,
documented rule (docs/relay.md): a flow's category from its destination's name and port (names ending in
.bad.example are malicious), deterministic flow ids, global counts, destination metadata, and a verdict
from the categories; a requested summary or categorization is generated after --report-delay. It is for
trying flowctl sage and the collector's relay without an account; it is NOT NetworkSage and analyses
nothing.

It accepts the one API key given as for the other sage commands. Without --tls-cert it serves plain
http, which clients accept only on a loopback address.

` + sageKeyHelp,
		Example: `  FLOWFLEET_NETWORKSAGE_API_KEY=test-key-123 flowctl sage fake --listen 127.0.0.1:8088
  FLOWFLEET_NETWORKSAGE_API_KEY=test-key-123 flowctl sage upload --networksage-url http://127.0.0.1:8088 x.bf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSageFake(cmd, vp) },
	}
	fake.Flags().String("listen", "127.0.0.1:8088", "address to listen on")
	fake.Flags().String("tls-cert", "", "serve https with this certificate (PEM)")
	fake.Flags().String("tls-key", "", "private key of --tls-cert (PEM)")
	fake.Flags().Duration("processing-delay", 5*time.Second, "how long after its upload a sample becomes processed")
	fake.Flags().Duration("report-delay", 0, "how long a requested summary or categorization takes to generate")
	fake.Flags().Bool("fail-reports", false, `end every requested summary and categorization "failed"`)
	fake.Flags().Bool("mismatch-flows", false, "make a sample's flow list disagree with the upload (one flow's bytes changed, one flow added)")
	fake.Flags().Int64("max-upload-size", sagefake.DefaultMaxUploadSize, "largest upload accepted, in bytes (larger: 413)")
	fake.Flags().Bool("private", false, "behave as a private account: uploads get no public uuid")
	fake.Flags().String("log-format", "text", "log format: text or json")

	cmd.AddCommand(upload, list, sample, flows, fake)
	cmd.AddCommand(newSageEnrichCommands(vp)...)
	return cmd
}

// sageKey reads the API key: --networksage-api-key-file, else FLOWFLEET_NETWORKSAGE_API_KEY or the
// config file's networksage-api-key.
func sageKey(vp *viper.Viper) (relay.Secret, error) {
	if path := vp.GetString("networksage-api-key-file"); path != "" {
		return relay.KeyFromFile(path)
	}
	if k := strings.TrimSpace(vp.GetString("networksage-api-key")); k != "" {
		return relay.Secret(k), nil
	}
	return "", errors.New("no NetworkSage API key: set FLOWFLEET_NETWORKSAGE_API_KEY, give --networksage-api-key-file, or put networksage-api-key in the config file (get a key at https://networksage.seclarity.io/register)")
}

func sageClient(vp *viper.Viper) (*relay.Client, error) {
	key, err := sageKey(vp)
	if err != nil {
		return nil, err
	}
	return relay.NewClient(relay.ClientOptions{BaseURL: vp.GetString("networksage-url"), APIKey: key,
		Timeout: vp.GetDuration("timeout"), UserAgent: "flowctl"})
}

func checkOutput(vp *viper.Viper) (string, error) {
	out := vp.GetString("output")
	if out != "table" && out != "json" {
		return "", fmt.Errorf("--output %q: want table or json", out)
	}
	return out, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runSageUpload(cmd *cobra.Command, vp *viper.Viper, path string) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	typ := vp.GetString("type")
	found := false
	for _, t := range relay.Types {
		found = found || t == typ
	}
	if !found {
		return fmt.Errorf("--type %q: want one of %s", typ, strings.Join(relay.Types, ", "))
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	name := vp.GetString("file-name")
	if name == "" {
		name = filepath.Base(path)
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	res, err := client.Upload(cmd.Context(), name, content, typ)
	if err != nil {
		return explainSage(err)
	}
	if out == "json" {
		return printJSON(cmd.OutOrStdout(), map[string]string{"sampleId": res.SampleID, "fileName": res.FileName,
			"uuid": res.UUID, "link": res.Link})
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "uploaded %s (%d bytes) as sample %s\n", sanitize(name), len(content), res.SampleID)
	if res.Link != "" {
		fmt.Fprintf(w, "link: %s\n", sanitize(res.Link))
	}
	if res.UUID != "" {
		fmt.Fprintf(w, "public id: %s\n", sanitize(res.UUID))
	}
	fmt.Fprintf(w, "NetworkSage processes a sample in 30-90 s; then: flowctl sage sample %s\n", res.SampleID)
	return nil
}

func runSageList(cmd *cobra.Command, vp *viper.Viper) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	list, err := client.ListUploads(cmd.Context())
	if err != nil {
		return explainSage(err)
	}
	if out == "json" {
		if list == nil {
			list = []relay.Upload{}
		}
		return printJSON(cmd.OutOrStdout(), list)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SAMPLE ID\tFILE NAME\tTYPE\tUPLOADED (UTC)\tPROCESSED")
	for _, u := range list {
		at := sanitize(u.DateCreated)
		if t, ok := u.UploadedAt(); ok {
			at = t.Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", sanitize(u.UUID), sanitize(u.FileName), sanitize(u.FileType), at, u.Processed)
	}
	if len(list) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no uploads")
	}
	return tw.Flush()
}

func runSageSample(cmd *cobra.Command, vp *viper.Viper, id string) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	interval := vp.GetDuration("poll-interval")
	if interval < 15*time.Second {
		return fmt.Errorf("--poll-interval %s: at least 15s (NetworkSage's own clients ask every 15 s)", interval)
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	deadline := time.Now().Add(vp.GetDuration("wait"))
	var info *relay.SampleInfo
	for {
		info, err = client.Sample(ctx, id)
		if err != nil {
			return explainSage(err)
		}
		if info.Processed || !time.Now().Add(interval).Before(deadline) {
			break
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "not processed yet; asking again in %s\n", interval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	return printSampleInfo(cmd.OutOrStdout(), out, id, info)
}

// printSampleInfo shows a sample's metadata (flowctl sage sample, wait).
func printSampleInfo(w io.Writer, out, id string, info *relay.SampleInfo) error {
	if out == "json" {
		return printJSON(w, info)
	}
	fmt.Fprintf(w, "sample:       %s\n", sanitize(id))
	fmt.Fprintf(w, "processed:    %v\n", info.Processed)
	if info.Processed {
		fmt.Fprintf(w, "file name:    %s\n", sanitize(info.FileName))
		fmt.Fprintf(w, "created:      %s\n", sanitize(info.DateCreated))
		fmt.Fprintf(w, "traffic date: %s\n", sanitize(info.TrafficDate))
		if pub := info.PublicID(); pub != "" {
			fmt.Fprintf(w, "public id:    %s\n", pub)
		}
	}
	return nil
}

func runSageFlows(cmd *cobra.Command, vp *viper.Viper, id string) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	flows, err := client.SampleFlows(cmd.Context(), id)
	if err != nil {
		return explainSage(err)
	}
	if out == "json" {
		js := make([]secflowJSON, len(flows))
		for i, f := range flows {
			js[i] = secflowToJSON(f)
		}
		return printJSON(cmd.OutOrStdout(), js)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDESTINATION\tNAME SOURCE\tSRC PKTS\tSRC BYTES\tDST PKTS\tDST BYTES\tSTART\tDURATION\tCATEGORY\tFLOW ID\tEVENT")
	for _, f := range flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sanitize(string(f.SourceData)),
			sanitize(string(f.DestinationData)), sanitize(string(f.DestinationNameSource)), sanitize(string(f.SourcePackets)),
			sanitize(string(f.SourceBytes)), sanitize(string(f.DestinationPackets)), sanitize(string(f.DestinationBytes)),
			sanitize(string(f.RelativeStart)), sanitize(string(f.Duration)), dash(sanitize(string(f.FlowCategory))),
			dash(sanitize(string(f.FlowID))), dash(sanitize(string(f.EventID))))
	}
	if len(flows) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no flows (is the sample processed yet? flowctl sage sample ID)")
	}
	return tw.Flush()
}

// explainSage adds a hint to the errors a first user meets.
func explainSage(err error) error {
	var ae *relay.Error
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Reason {
	case relay.ReasonAuth:
		return fmt.Errorf("%w (NetworkSage refused the API key: check it)", err)
	case relay.ReasonNetwork, relay.ReasonTimeout:
		return fmt.Errorf("%w (is --networksage-url right and reachable?)", err)
	}
	return err
}

func runSageFake(cmd *cobra.Command, vp *viper.Viper) error {
	key, err := sageKey(vp)
	if err != nil {
		return fmt.Errorf("the fake needs the key it will accept: %w", err)
	}
	certFile, keyFile := vp.GetString("tls-cert"), vp.GetString("tls-key")
	if (certFile == "") != (keyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	var log *slog.Logger
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	switch vp.GetString("log-format") {
	case "json":
		log = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts))
	case "text", "":
		log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts))
	default:
		return fmt.Errorf("--log-format %q: want text or json", vp.GetString("log-format"))
	}
	fake := sagefake.New(sagefake.Options{Keys: []string{key.Reveal()}, MaxUploadSize: vp.GetInt64("max-upload-size"),
		ProcessingDelay: vp.GetDuration("processing-delay"), ReportDelay: vp.GetDuration("report-delay"),
		FailReports: vp.GetBool("fail-reports"), MismatchFlows: vp.GetBool("mismatch-flows"), Private: vp.GetBool("private"), Log: log})
	lis, err := net.Listen("tcp", vp.GetString("listen"))
	if err != nil {
		return err
	}
	scheme := "http"
	if certFile != "" {
		scheme = "https"
	}
	url := scheme + "://" + lis.Addr().String()
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(cmd.OutOrStdout(), "FAKE NetworkSage API (sagefake) listening on %s\n", url)
	fmt.Fprintf(cmd.OutOrStdout(), "This is a fake for tests: it is not NetworkSage and analyses nothing.\n")
	fmt.Fprintf(cmd.OutOrStdout(), "Use it with: --networksage-url %s (flowctl sage, collector)\n", url)
	log.Info("sagefake: FAKE NetworkSage API listening (for tests only)", "url", url,
		"processing_delay", vp.GetDuration("processing-delay"))
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(lis, certFile, keyFile)
		} else {
			errc <- srv.Serve(lis)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-cmd.Context().Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	log.Info("sagefake: stopped")
	return nil
}
