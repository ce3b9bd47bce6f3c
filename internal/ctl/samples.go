package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/relay"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

func newSamplesCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "samples",
		Short: "List, fetch and watch the samples a collector wrote",
		Long: `A sample is one host's flows in one window, written by the collector as a BayseFlow file named
<host>_<window start>.bf. These commands query the collector over mutual TLS with a reader (or admin)
certificate: --collector, --cert, --key and --ca, or FLOWFLEET_COLLECTOR, FLOWFLEET_CERT, ….`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List samples, newest first",
		Example: `  flowctl samples list --host web01 --since 2h
  flowctl samples list --state written -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSamplesList(cmd, vp) },
	}
	addConnFlags(list)
	list.Flags().String("host", "", "only this host's samples")
	list.Flags().String("since", "", "only windows starting at or after this time (RFC 3339, or a duration ago such as 2h)")
	list.Flags().String("until", "", "only windows starting before this time (RFC 3339, or a duration ago)")
	list.Flags().String("state", "", "only samples in this state: "+stateList)
	addOutputFlag(list)
	list.Flags().Int("limit", 0, "stop after this many samples (0: all)")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Download a sample's BayseFlow file",
		Example: `  flowctl samples get web01_1700000000 -f web01.bf
  flowctl samples get web01_1700000000 > web01.bf
  flowctl samples get web01_1700000000 --labeled -f web01.labeled.bf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSamplesGet(cmd, vp, args[0]) },
	}
	addConnFlags(get)
	get.Flags().StringP("output-file", "f", "", "write the file here instead of standard output")
	get.Flags().Bool("labeled", false, "set each flow's label to its NetworkSage category (an enriched sample; a flow NetworkSage did not match gets none)")

	flows := &cobra.Command{
		Use:   "flows ID",
		Short: "Print a sample's flows, with NetworkSage's category once the sample is enriched",
		Example: `  flowctl samples flows web01_1700000000
  flowctl samples flows web01_1700000000 --category fake-malicious -o wide`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSamplesFlows(cmd, vp, args[0]) },
	}
	addConnFlags(flows)
	addOutputFlag(flows)
	flows.Flags().String("category", "", "only flows NetworkSage put in this category (an enriched sample)")
	flows.Flags().Bool("global-count", false, "ask NetworkSage how many samples globally hold each flow (one request per distinct flow id, rate-limited; needs this machine's API key)")
	flows.Flags().Float64("global-count-rate", 5, "most --global-count requests a second")
	flows.Flags().Int("global-count-max", 500, "most distinct flow ids --global-count asks about; a sample with more is refused")
	flows.Flags().String("networksage-url", relay.DefaultBaseURL, "NetworkSage API base URL (--global-count)")
	flows.Flags().String("networksage-api-key-file", "", "file holding the NetworkSage API key (--global-count; else FLOWFLEET_NETWORKSAGE_API_KEY or networksage-api-key in --config)")

	watch := &cobra.Command{
		Use:   "watch",
		Short: "Print samples as the collector writes them, until interrupted",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runSamplesWatch(cmd, vp) },
	}
	addConnFlags(watch)
	watch.Flags().String("host", "", "only this host's samples")
	watch.Flags().Duration("for", 0, "stop after this long (0: until interrupted)")
	addOutputFlag(watch)
	relayCmd := &cobra.Command{
		Use:   "relay ID",
		Short: "Queue a sample for upload to NetworkSage again (admin)",
		Long: `Queue a sample for upload to NetworkSage again, at once: after fixing what made its upload fail
(state relay_failed: a refused key, a sample too large), or to upload it once more. Its state goes back to
written and the collector's relay uploads it. Needs a certificate with role admin, and a collector whose
relay is on (it has a NetworkSage API key).`,
		Example: `  flowctl samples relay web01_1700000000`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runSamplesRelay(cmd, vp, args[0]) },
	}
	addConnFlags(relayCmd)
	enrich := &cobra.Command{
		Use:   "enrich ID | --all",
		Short: "Fetch NetworkSage's answers about a sample again (admin)",
		Long: `Fetch NetworkSage's answers about a sample again: the collector asks whether NetworkSage has processed
it, then stores each flow's category and the sample's verdict and summary (docs/enrichment.md). Use it for
samples relayed before enrichment existed, or after fixing what made enrichment fail (state
enrichment_failed). --all queues every sample NetworkSage has that is relayed, processed or
enrichment_failed. Needs a certificate with role admin, and a collector whose relay is on.`,
		Example: `  flowctl samples enrich web01_1700000000
  flowctl samples enrich --all`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSamplesEnrich(cmd, vp, args) },
	}
	addConnFlags(enrich)
	enrich.Flags().Bool("all", false, "every sample NetworkSage has that is relayed, processed or enrichment_failed")
	cmd.AddCommand(list, get, flows, watch, relayCmd, enrich)
	return cmd
}

// adminCall dials the collector and makes one admin-only SampleService call; what says what needs the
// admin role, for the error a reader certificate gets.
func adminCall[T any](cmd *cobra.Command, vp *viper.Viper, what string, call func(context.Context, flowfleetv1.SampleServiceClient) (T, error)) (T, error) {
	var zero T
	conn, addr, err := dial(vp)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	ctx, cancel := timeoutCtx(cmd.Context(), vp)
	defer cancel()
	resp, err := call(ctx, flowfleetv1.NewSampleServiceClient(conn))
	if status.Code(err) == codes.PermissionDenied {
		return zero, fmt.Errorf("permission denied: %s needs a certificate with role admin (%s)", what, status.Convert(err).Message())
	}
	if err != nil {
		return zero, friendly(err, addr)
	}
	return resp, nil
}

func runSamplesRelay(cmd *cobra.Command, vp *viper.Viper, id string) error {
	resp, err := adminCall(cmd, vp, "re-queueing a sample", func(ctx context.Context, c flowfleetv1.SampleServiceClient) (*flowfleetv1.RelaySampleResponse, error) {
		return c.RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: id})
	})
	if err != nil {
		return err
	}
	s := resp.GetSample()
	fmt.Fprintf(cmd.OutOrStdout(), "%s queued for upload to NetworkSage (state %s)\n", s.GetId(), stateName(s.GetState()))
	return nil
}

func runSamplesEnrich(cmd *cobra.Command, vp *viper.Viper, args []string) error {
	all := vp.GetBool("all")
	if all == (len(args) == 1) {
		return errors.New("give a sample ID or --all, not both")
	}
	req := &flowfleetv1.EnrichSampleRequest{All: all}
	if !all {
		req.Id = args[0]
	}
	resp, err := adminCall(cmd, vp, "enriching a sample again", func(ctx context.Context, c flowfleetv1.SampleServiceClient) (*flowfleetv1.EnrichSampleResponse, error) {
		return c.EnrichSample(ctx, req)
	})
	if err != nil {
		return err
	}
	if all {
		fmt.Fprintf(cmd.OutOrStdout(), "%d samples queued for enrichment\n", resp.GetQueued())
		return nil
	}
	s := resp.GetSample()
	fmt.Fprintf(cmd.OutOrStdout(), "%s queued for enrichment (state %s)\n", s.GetId(), stateName(s.GetState()))
	return nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return timestamppb.New(time.Now().Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("time %q: want RFC 3339 (2026-11-25T10:00:00Z) or a duration (90m)", s)
	}
	return timestamppb.New(t), nil
}

var stateNames = map[string]flowfleetv1.SampleState{
	"open": flowfleetv1.SampleState_SAMPLE_STATE_OPEN, "closed": flowfleetv1.SampleState_SAMPLE_STATE_CLOSED,
	"written": flowfleetv1.SampleState_SAMPLE_STATE_WRITTEN, "relayed": flowfleetv1.SampleState_SAMPLE_STATE_RELAYED,
	"relay_failed": flowfleetv1.SampleState_SAMPLE_STATE_RELAY_FAILED, "processed": flowfleetv1.SampleState_SAMPLE_STATE_PROCESSED,
	"write_failed": flowfleetv1.SampleState_SAMPLE_STATE_WRITE_FAILED, "enriched": flowfleetv1.SampleState_SAMPLE_STATE_ENRICHED,
	"enrichment_failed": flowfleetv1.SampleState_SAMPLE_STATE_ENRICHMENT_FAILED,
}

// stateList is the states a --state flag takes, in life-cycle order.
const stateList = "open, closed, written, relayed, relay_failed, processed, enriched, enrichment_failed, write_failed"

// sampleError is the error a sample shows: why it could not be written, why its relay failed, or why
// its enrichment failed (or what of it did not come back).
func sampleError(s *flowfleetv1.Sample) string {
	if s.GetWriteError() != "" {
		return s.GetWriteError()
	}
	if s.GetRelayError() != "" {
		return s.GetRelayError()
	}
	return s.GetEnrichmentError()
}

func stateName(s flowfleetv1.SampleState) string {
	for k, v := range stateNames {
		if v == s {
			return k
		}
	}
	return "unknown"
}

func runSamplesList(cmd *cobra.Command, vp *viper.Viper) error {
	req := &flowfleetv1.ListSamplesRequest{Host: vp.GetString("host"), PageSize: 500}
	var err error
	if req.Since, err = parseWhen(vp.GetString("since")); err != nil {
		return err
	}
	if req.Until, err = parseWhen(vp.GetString("until")); err != nil {
		return err
	}
	if s := vp.GetString("state"); s != "" {
		st, ok := stateNames[s]
		if !ok {
			return fmt.Errorf("--state %q: want one of %s", s, stateList)
		}
		req.State = st
	}
	out, err := outputFormat(vp)
	if err != nil {
		return err
	}
	conn, addr, err := dial(vp)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flowfleetv1.NewSampleServiceClient(conn)
	limit := vp.GetInt("limit")
	var all []*flowfleetv1.Sample
	for {
		ctx, cancel := timeoutCtx(cmd.Context(), vp)
		resp, err := client.ListSamples(ctx, req)
		cancel()
		if err != nil {
			return friendly(err, addr)
		}
		all = append(all, resp.GetSamples()...)
		if resp.GetNextPageToken() == "" || (limit > 0 && len(all) >= limit) {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	if len(all) == 0 && (out == outTable || out == outWide) {
		fmt.Fprintln(cmd.ErrOrStderr(), "no samples")
	}
	return printAll(cmd.OutOrStdout(), out, sampleColumns(clockOf(vp)), sampleToJSON, all)
}

// sanitize drops control characters from text that came from the network before it reaches a terminal.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

func runSamplesGet(cmd *cobra.Command, vp *viper.Viper, id string) error {
	conn, addr, err := dial(vp)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := timeoutCtx(cmd.Context(), vp)
	defer cancel()
	client := flowfleetv1.NewSampleServiceClient(conn)
	stream, err := client.GetSampleContent(ctx, &flowfleetv1.GetSampleContentRequest{Id: id})
	if err != nil {
		return friendly(err, addr)
	}
	var content []byte
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return friendly(err, addr)
		}
		content = append(content, resp.GetChunk()...)
	}
	if vp.GetBool("labeled") {
		if content, err = labelContent(cmd, client, vp, addr, id, content); err != nil {
			return err
		}
	}
	if path := vp.GetString("output-file"); path != "" {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d bytes\n", path, len(content))
		return nil
	}
	_, err = cmd.OutOrStdout().Write(content)
	return err
}

func runSamplesFlows(cmd *cobra.Command, vp *viper.Viper, id string) error {
	out, err := outputFormat(vp)
	if err != nil {
		return err
	}
	conn, addr, err := dial(vp)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flowfleetv1.NewSampleServiceClient(conn)
	category := vp.GetString("category")
	req := &flowfleetv1.ListSampleFlowsRequest{Id: id, PageSize: 1000}
	var flows []*flowfleetv1.Flow
	for {
		ctx, cancel := timeoutCtx(cmd.Context(), vp)
		resp, err := client.ListSampleFlows(ctx, req)
		cancel()
		if err != nil {
			return friendly(err, addr)
		}
		for _, f := range resp.GetFlows() {
			if category == "" || f.GetCategory() == category {
				flows = append(flows, f)
			}
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	cols, toJSON := flowColumns(clockOf(vp)), flowToJSON
	if vp.GetBool("global-count") {
		counts, err := globalCounts(cmd, vp, flows)
		if err != nil {
			return err
		}
		cols = append(cols, column[*flowfleetv1.Flow]{head: "GLOBAL", cell: func(f *flowfleetv1.Flow) string {
			if c, ok := counts[f.GetFlowId()]; ok {
				return strconv.FormatInt(c, 10)
			}
			return "-"
		}})
		toJSON = func(f *flowfleetv1.Flow) any {
			j := flowToJSON(f).(flowJSON)
			if c, ok := counts[f.GetFlowId()]; ok {
				j.GlobalCount = &c
			}
			return j
		}
	}
	return printAll(cmd.OutOrStdout(), out, cols, toJSON, flows)
}

// globalCounts asks NetworkSage for the global count of each distinct flow id of flows (an enriched
// sample's), at most --global-count-rate requests a second and --global-count-max ids in all, so that a
// large sample does not turn into a flood of requests.
func globalCounts(cmd *cobra.Command, vp *viper.Viper, flows []*flowfleetv1.Flow) (map[string]int64, error) {
	var ids []string
	seen := map[string]bool{}
	for _, f := range flows {
		if id := f.GetFlowId(); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("--global-count: the sample's flows have no NetworkSage flow ids (is it enriched? flowctl samples list shows its state)")
	}
	if m := vp.GetInt("global-count-max"); len(ids) > m {
		return nil, fmt.Errorf("--global-count: %d distinct flow ids, more than --global-count-max %d; narrow with --category or raise the bound", len(ids), m)
	}
	rate := vp.GetFloat64("global-count-rate")
	if rate <= 0 || rate > 100 {
		return nil, fmt.Errorf("--global-count-rate %v: want more than 0 and at most 100", rate)
	}
	client, err := sageClient(vp)
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	counts := make(map[string]int64, len(ids))
	for i, id := range ids {
		if i > 0 {
			select {
			case <-tick.C:
			case <-cmd.Context().Done():
				return nil, cmd.Context().Err()
			}
		}
		n, err := client.FlowCount(cmd.Context(), id)
		if err != nil {
			return nil, fmt.Errorf("--global-count: flow %s: %w", id, err)
		}
		counts[id] = n
	}
	return counts, nil
}

func runSamplesWatch(cmd *cobra.Command, vp *viper.Viper) error {
	conn, addr, err := dial(vp)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := cmd.Context()
	if d := vp.GetDuration("for"); d > 0 {
		var cancel func()
		ctx, cancel = timeoutCtxFor(ctx, d)
		defer cancel()
	}
	stream, err := flowfleetv1.NewSampleServiceClient(conn).WatchSamples(ctx, &flowfleetv1.WatchSamplesRequest{Host: vp.GetString("host")})
	if err != nil {
		return friendly(err, addr)
	}
	out, err := outputFormat(vp)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	p := newRowPrinter(w, out, sampleEventColumns(clockOf(vp)), sampleEventToJSON)
	p.stream = true
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return p.close()
			}
			return friendly(err, addr)
		}
		if lost := resp.GetEventsLost(); lost != nil {
			if err := printLost(w, cmd.ErrOrStderr(), out, lost.GetCount()); err != nil {
				return err
			}
			continue
		}
		if err := p.print(resp.GetEvent()); err != nil {
			return err
		}
	}
}

func newHostsCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{Use: "hosts", Short: "Show the sensors a collector knows"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List hosts: connected, open streams, last contact, version, flows received, packets and flows dropped",
		Long: `List the sensors the collector knows: connected or not, STREAMS (open ingest streams; more than one
with different stream ids means two sensors share one certificate), last contact, software version, flows
received, packets dropped (PKT DROPS: Host.drops_reported) and flows dropped (FLOW DROPS).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(vp)
			if err != nil {
				return err
			}
			conn, addr, err := dial(vp)
			if err != nil {
				return err
			}
			defer conn.Close()
			// Every page, following next_page_token (each request has its own --timeout).
			client := flowfleetv1.NewFleetServiceClient(conn)
			req := &flowfleetv1.ListHostsRequest{PageSize: 500, ConnectedOnly: vp.GetBool("connected")}
			var hosts []*flowfleetv1.Host
			for {
				ctx, cancel := timeoutCtx(cmd.Context(), vp)
				resp, err := client.ListHosts(ctx, req)
				cancel()
				if err != nil {
					return friendly(err, addr)
				}
				hosts = append(hosts, resp.GetHosts()...)
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			return printAll(cmd.OutOrStdout(), out, hostColumns(clockOf(vp)), hostToJSON, hosts)
		},
	}
	addConnFlags(list)
	addOutputFlag(list)
	list.Flags().Bool("connected", false, "only hosts with an open ingest stream")
	cmd.AddCommand(list)
	return cmd
}

// labelContent sets each flow of a sample's .bf to its NetworkSage category, read from the collector
// (ListSampleFlows lists the flows in file order). A flow NetworkSage did not match gets no label.
func labelContent(cmd *cobra.Command, client flowfleetv1.SampleServiceClient, vp *viper.Viper, addr, id string, content []byte) ([]byte, error) {
	file, err := bayseflow.Decode(content)
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", id, err)
	}
	req := &flowfleetv1.ListSampleFlowsRequest{Id: id, PageSize: 1000}
	var cats []string
	for {
		ctx, cancel := timeoutCtx(cmd.Context(), vp)
		resp, err := client.ListSampleFlows(ctx, req)
		cancel()
		if err != nil {
			return nil, friendly(err, addr)
		}
		for _, f := range resp.GetFlows() {
			cats = append(cats, f.GetCategory())
		}
		if resp.GetNextPageToken() == "" || len(cats) > len(file.Flows) {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if len(cats) != len(file.Flows) {
		return nil, fmt.Errorf("sample %s: the file has %d flows and the collector lists %d; not labelling", id, len(file.Flows), len(cats))
	}
	labelled := 0
	for i, c := range cats {
		file.Flows[i].Label = c
		if c != "" {
			labelled++
		}
	}
	if labelled == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: sample %s has no NetworkSage categories (is it enriched? flowctl samples get %s shows its state); no flow is labelled\n", id, id)
	}
	var b bytes.Buffer
	if err := bayseflow.EncodeFile(&b, file); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
