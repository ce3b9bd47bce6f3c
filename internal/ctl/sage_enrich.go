package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/flowfleet/flowfleet/internal/relay"
)

// The polling of NetworkSage's own clients (API doc §4.3, §4.4): every 15 s; a report that says
// "failed" right after it was requested may not have been started yet (Siemplify waits 120 s).
const (
	sagePollInterval = 15 * time.Second
	sageMinInterval  = time.Second
	sageReportGrace  = 120 * time.Second
)

// newSageEnrichCommands are the commands of every NetworkSage endpoint beyond upload, list, sample and
// flows.
func newSageEnrichCommands(vp *viper.Viper) []*cobra.Command {
	withOutput := func(c *cobra.Command) *cobra.Command {
		c.Flags().StringP("output", "o", "table", "output: table or json")
		return c
	}
	aggregated := withOutput(&cobra.Command{
		Use:   "aggregated SAMPLE_ID",
		Short: "Show a processed sample's aggregated view: each distinct flow with its destination, behaviour, event and global count",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runSageAggregated(cmd, vp, args[0], false) },
	})
	public := withOutput(&cobra.Command{
		Use:   "public PUBLIC_ID",
		Short: "Show a public sample's aggregated view (no API key needed)",
		Long: `Show the aggregated view of a sample that its owner did not make private, by its public id (the
"public id" flowctl sage upload and flowctl sage sample print). This endpoint takes no API key, and none
is sent.`,
		Example: `  flowctl sage public Nzhm...ZmI=`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runSageAggregated(cmd, vp, args[0], true) },
	})
	report := func(kind relay.ReportKind) *cobra.Command {
		c := withOutput(&cobra.Command{
			Use:   string(kind) + " SAMPLE_ID",
			Short: "Show a sample's " + string(kind) + " (verdict, confidence, text); --request asks for one and waits",
			Long: `Show a sample's ` + string(kind) + `: its status (generated, failed when none exists or generation
failed, anything else while it is being generated) and, once generated, the verdict, confidence, text and
details. With --request, ask NetworkSage to generate one (POST), then ask every --interval until it is
generated or has failed, for at most --max-wait; "failed" within --grace of the request counts as not
started yet.`,
			Example: `  flowctl sage ` + string(kind) + ` 00dc397c3f85472b9c7f4203c408e4fb
  flowctl sage ` + string(kind) + ` --request 00dc397c3f85472b9c7f4203c408e4fb`,
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error { return runSageReport(cmd, vp, args[0], kind) },
		})
		c.Flags().Bool("request", false, "ask NetworkSage to generate it, then wait until it is generated or has failed")
		c.Flags().Duration("interval", sagePollInterval, "with --request, how often to ask (NetworkSage's own clients ask every 15s)")
		c.Flags().Duration("max-wait", 10*time.Minute, "with --request, how long to wait at most")
		c.Flags().Duration("grace", sageReportGrace, `with --request, how long after the request "failed" still means "not started yet"`)
		return c
	}
	wait := withOutput(&cobra.Command{
		Use:   "wait SAMPLE_ID",
		Short: "Wait until NetworkSage has processed a sample, asking every --interval",
		Long: `Ask for a sample's metadata every --interval (15 s, as NetworkSage's own clients) until it is
processed (its body is not empty and its trafficDate is set), for at most --timeout; then show it.
Failed requests end the wait. NetworkSage takes 30-90 s to process a sample.`,
		Example: `  flowctl sage wait --timeout 5m 00dc397c3f85472b9c7f4203c408e4fb`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runSageWait(cmd, vp, args[0]) },
	})
	wait.Flags().Duration("timeout", 10*time.Minute, "how long to wait at most (each request is also bounded by 30s)")
	wait.Flags().Duration("interval", sagePollInterval, "how often to ask")
	count := withOutput(&cobra.Command{
		Use:   "count FLOW_ID",
		Short: "Show in how many samples, globally, NetworkSage has seen a flow",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runSageCount(cmd, vp, args[0]) },
	})
	destination := withOutput(&cobra.Command{
		Use:     "destination NAME:PORT",
		Short:   "Show what NetworkSage knows about a destination (title, description, relevance, tags)",
		Example: `  flowctl sage destination example.com:443`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runSageDestination(cmd, vp, args[0]) },
	})
	behavior := withOutput(&cobra.Command{
		Use:   "behavior FLOW_ID",
		Short: "Show a flow's behaviour metadata",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSageDocument(cmd, vp, "flow id", args[0], (*relay.Client).Behavior)
		},
	})
	event := withOutput(&cobra.Command{
		Use:   "event EVENT_ID",
		Short: "Show an event's metadata",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSageDocument(cmd, vp, "event id", args[0], (*relay.Client).Event)
		},
	})
	return []*cobra.Command{aggregated, report(relay.ReportSummary), report(relay.ReportCategorization), wait, count,
		destination, behavior, event, public}
}

// secflowJSON is an enriched flow in JSON: counts and times as numbers (null when the service sent
// something that is not one), the rest as sent.
type secflowJSON struct {
	SourceData            string   `json:"sourceData"`
	DestinationData       string   `json:"destinationData"`
	DestinationNameSource string   `json:"destinationNameSource"`
	SourcePackets         *int64   `json:"sourcePackets"`
	SourceBytes           *int64   `json:"sourceBytes"`
	DestinationPackets    *int64   `json:"destinationPackets"`
	DestinationBytes      *int64   `json:"destinationBytes"`
	RelativeStart         *float64 `json:"relativeStart"`
	Duration              *float64 `json:"duration"`
	FlowCategory          string   `json:"flowCategory"`
	FlowID                string   `json:"flowId"`
	EventID               string   `json:"eventId"`
}

func intOrNil(t relay.Text) *int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(string(t)), 10, 64)
	if err != nil {
		return nil
	}
	return &n
}

func floatOrNil(t relay.Text) *float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(string(t)), 64)
	if err != nil || f != f || f > 1e300 || f < -1e300 { // NaN and infinities have no JSON form
		return nil
	}
	return &f
}

func secflowToJSON(f relay.Secflow) secflowJSON {
	return secflowJSON{SourceData: string(f.SourceData), DestinationData: string(f.DestinationData),
		DestinationNameSource: string(f.DestinationNameSource), SourcePackets: intOrNil(f.SourcePackets),
		SourceBytes: intOrNil(f.SourceBytes), DestinationPackets: intOrNil(f.DestinationPackets),
		DestinationBytes: intOrNil(f.DestinationBytes), RelativeStart: floatOrNil(f.RelativeStart),
		Duration: floatOrNil(f.Duration), FlowCategory: string(f.FlowCategory), FlowID: string(f.FlowID),
		EventID: string(f.EventID)}
}

type destinationJSON struct {
	Name        string   `json:"name"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Relevance   string   `json:"relevance"`
	Tags        []string `json:"tags"`
}

func destinationToJSON(d *relay.DestinationInfo) *destinationJSON {
	if d == nil {
		return nil
	}
	tags := d.Tags
	if tags == nil {
		tags = []string{}
	}
	return &destinationJSON{Name: d.Name, Title: d.Title, Description: d.Description, Relevance: d.Relevance, Tags: tags}
}

type aggregateJSON struct {
	Secflow     secflowJSON      `json:"secflow"`
	Destination *destinationJSON `json:"destination"`
	Behavior    json.RawMessage  `json:"behavior"`
	Event       json.RawMessage  `json:"event"`
	FlowIDCount int64            `json:"flowIdCount"`
}

func aggregateToJSON(a relay.Aggregate) any {
	null := func(r json.RawMessage) json.RawMessage {
		if r == nil {
			return json.RawMessage("null")
		}
		return r
	}
	return aggregateJSON{Secflow: secflowToJSON(a.Secflow), Destination: destinationToJSON(a.Destination),
		Behavior: null(a.Behavior), Event: null(a.Event), FlowIDCount: a.FlowIDCount}
}

func aggregateColumns() []column[relay.Aggregate] {
	type A = relay.Aggregate
	dest := func(a A, f func(*relay.DestinationInfo) string) string {
		if a.Destination == nil {
			return "-"
		}
		return dash(sanitize(f(a.Destination)))
	}
	return []column[A]{
		{head: "FLOW ID", cell: func(a A) string { return dash(sanitize(string(a.Secflow.FlowID))) }},
		{head: "SOURCE", cell: func(a A) string { return dash(sanitize(string(a.Secflow.SourceData))) }},
		{head: "DESTINATION", cell: func(a A) string { return dash(sanitize(string(a.Secflow.DestinationData))) }},
		{head: "CATEGORY", cell: func(a A) string { return dash(sanitize(string(a.Secflow.FlowCategory))) }},
		{head: "GLOBAL COUNT", cell: func(a A) string { return strconv.FormatInt(a.FlowIDCount, 10) }},
		{head: "EVENT", cell: func(a A) string { return dash(sanitize(string(a.Secflow.EventID))) }},
		{head: "TITLE", cell: func(a A) string { return dest(a, func(d *relay.DestinationInfo) string { return d.Title }) }},
		{head: "RELEVANCE", cell: func(a A) string { return dest(a, func(d *relay.DestinationInfo) string { return d.Relevance }) }},
	}
}

// sageClientTimeout is sageClient with the request timeout given (for a command whose --timeout is
// its overall deadline).
func sageClientTimeout(vp *viper.Viper, timeout time.Duration) (*relay.Client, error) {
	key, err := sageKey(vp)
	if err != nil {
		return nil, err
	}
	return relay.NewClient(relay.ClientOptions{BaseURL: vp.GetString("networksage-url"), APIKey: key,
		Timeout: timeout, UserAgent: "flowctl"})
}

func runSageAggregated(cmd *cobra.Command, vp *viper.Viper, id string, public bool) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	var list []relay.Aggregate
	if public {
		// No key: the public view takes none, and this command works without one.
		client, cerr := relay.NewPublicClient(relay.ClientOptions{BaseURL: vp.GetString("networksage-url"),
			Timeout: vp.GetDuration("timeout"), UserAgent: "flowctl"})
		if cerr != nil {
			return cerr
		}
		list, err = client.PublicAggregated(cmd.Context(), id)
	} else {
		client, cerr := sageClient(vp)
		if cerr != nil {
			return cerr
		}
		list, err = client.Aggregated(cmd.Context(), id)
	}
	if err != nil {
		return explainSage(err)
	}
	if len(list) == 0 && out == "table" {
		fmt.Fprintln(cmd.ErrOrStderr(), "no flows (is the sample processed yet? flowctl sage wait ID)")
	}
	return printAll(cmd.OutOrStdout(), out, aggregateColumns(), aggregateToJSON, list)
}

// pollUntil calls check now and then every interval until it says done or fails, ctx ends, or the
// next call would come after maxWait; it reports whether check said done.
func pollUntil(ctx context.Context, log io.Writer, interval, maxWait time.Duration, what string, check func() (bool, error)) (bool, error) {
	if interval < sageMinInterval {
		return false, fmt.Errorf("--interval %s: at least %s", interval, sageMinInterval)
	}
	deadline := time.Now().Add(maxWait)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
		done, err := check()
		if err != nil || done {
			return done, err
		}
		if !time.Now().Add(interval).Before(deadline) {
			return false, nil
		}
		fmt.Fprintf(log, "%s; asking again in %s\n", what, interval)
		t.Reset(interval)
	}
}

func runSageWait(cmd *cobra.Command, vp *viper.Viper, id string) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	maxWait := vp.GetDuration("timeout")
	client, err := sageClientTimeout(vp, min(relay.DefaultTimeout, max(maxWait, time.Second)))
	if err != nil {
		return err
	}
	var info *relay.SampleInfo
	done, err := pollUntil(cmd.Context(), cmd.ErrOrStderr(), vp.GetDuration("interval"), maxWait, "not processed yet", func() (bool, error) {
		var err error
		info, err = client.Sample(cmd.Context(), id)
		return err == nil && info.Processed, err
	})
	if err != nil {
		return explainSage(err)
	}
	if err := printSampleInfo(cmd.OutOrStdout(), out, id, info); err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("sample %s not processed after %s", sanitize(id), maxWait)
	}
	return nil
}

type reportJSON struct {
	SampleID   string          `json:"sampleId"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`
	Verdict    string          `json:"verdict"`
	Confidence string          `json:"confidence"`
	Summary    string          `json:"summary"`
	Details    json.RawMessage `json:"details"`
}

func runSageReport(cmd *cobra.Command, vp *viper.Viper, id string, kind relay.ReportKind) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var rep *relay.Report
	request := vp.GetBool("request")
	if !request {
		if rep, err = client.Report(ctx, id, kind); err != nil {
			return explainSage(err)
		}
	} else {
		if err := client.RequestReport(ctx, id, kind); err != nil {
			return explainSage(err)
		}
		requested, grace := time.Now(), vp.GetDuration("grace")
		done, err := pollUntil(ctx, cmd.ErrOrStderr(), vp.GetDuration("interval"), vp.GetDuration("max-wait"),
			string(kind)+" not generated yet", func() (bool, error) {
				var err error
				rep, err = client.Report(ctx, id, kind)
				if err != nil {
					return false, err
				}
				return rep.Status == relay.ReportGenerated || (rep.Status == relay.ReportFailed && time.Since(requested) >= grace), nil
			})
		if err != nil {
			return explainSage(err)
		}
		if !done {
			err = fmt.Errorf("%s of sample %s not generated after %s (status %q)", kind, sanitize(id), vp.GetDuration("max-wait"), sanitize(rep.Status))
			if perr := printReport(cmd.OutOrStdout(), out, id, kind, rep); perr != nil {
				return perr
			}
			return err
		}
	}
	if err := printReport(cmd.OutOrStdout(), out, id, kind, rep); err != nil {
		return err
	}
	if request && rep.Status == relay.ReportFailed {
		return fmt.Errorf("NetworkSage could not generate the %s of sample %s", kind, sanitize(id))
	}
	if !request && rep.Status == relay.ReportFailed && out == "table" {
		fmt.Fprintf(cmd.ErrOrStderr(), "none generated (ask for one: flowctl sage %s --request %s)\n", kind, sanitize(id))
	}
	return nil
}

func printReport(w io.Writer, out, id string, kind relay.ReportKind, r *relay.Report) error {
	if out == "json" {
		d := r.Details
		if d == nil {
			d = json.RawMessage("null")
		}
		return printJSON(w, reportJSON{SampleID: id, Kind: string(kind), Status: r.Status, Verdict: r.Verdict,
			Confidence: r.Confidence, Summary: r.Summary, Details: d})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "sample:\t%s\n", sanitize(id))
	fmt.Fprintf(tw, "report:\t%s\n", kind)
	fmt.Fprintf(tw, "status:\t%s\n", dash(sanitize(r.Status)))
	if r.Status == relay.ReportGenerated {
		fmt.Fprintf(tw, "verdict:\t%s\n", dash(sanitize(r.Verdict)))
		fmt.Fprintf(tw, "confidence:\t%s\n", dash(sanitize(r.Confidence)))
		fmt.Fprintf(tw, "summary:\t%s\n", dash(sanitize(r.Summary)))
		if r.Details != nil {
			fmt.Fprintf(tw, "details:\t%s\n", sanitize(compactJSON(r.Details)))
		}
	}
	return tw.Flush()
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func runSageCount(cmd *cobra.Command, vp *viper.Viper, flowID string) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	n, err := client.FlowCount(cmd.Context(), flowID)
	if err != nil {
		return explainSage(err)
	}
	if out == "json" {
		return printJSON(cmd.OutOrStdout(), struct {
			FlowID string `json:"flowId"`
			Count  int64  `json:"count"`
		}{flowID, n})
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "flow %s: in %d samples\n", sanitize(flowID), n)
	return err
}

func runSageDestination(cmd *cobra.Command, vp *viper.Viper, nameAndPort string) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	if _, _, err := relay.SplitDestination(nameAndPort); err != nil {
		return err
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	d, err := client.Destination(cmd.Context(), nameAndPort)
	if err != nil {
		return explainSage(err)
	}
	if out == "json" {
		return printJSON(cmd.OutOrStdout(), destinationToJSON(d))
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "destination:\t%s\n", sanitize(d.Name))
	fmt.Fprintf(tw, "title:\t%s\n", dash(sanitize(d.Title)))
	fmt.Fprintf(tw, "description:\t%s\n", dash(sanitize(d.Description)))
	fmt.Fprintf(tw, "relevance:\t%s\n", dash(sanitize(d.Relevance)))
	fmt.Fprintf(tw, "tags:\t%s\n", dash(sanitize(strings.Join(d.Tags, ", "))))
	return tw.Flush()
}

// runSageDocument shows a behaviour or an event: JSON as sent, or a table of its top-level members.
func runSageDocument(cmd *cobra.Command, vp *viper.Viper, what, id string,
	get func(*relay.Client, context.Context, string) (json.RawMessage, error)) error {
	out, err := checkOutput(vp)
	if err != nil {
		return err
	}
	client, err := sageClient(vp)
	if err != nil {
		return err
	}
	doc, err := get(client, cmd.Context(), id)
	if err != nil {
		return explainSage(err)
	}
	w := cmd.OutOrStdout()
	if doc == nil {
		doc = json.RawMessage("null")
	}
	if out == "json" {
		var b bytes.Buffer
		if err := json.Indent(&b, doc, "", "  "); err != nil {
			return err
		}
		b.WriteByte('\n')
		_, err := b.WriteTo(w)
		return err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil || fields == nil {
		_, err := fmt.Fprintf(w, "%s:\t%s\n%s\n", what, sanitize(id), sanitize(compactJSON(doc)))
		return err
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, k := range keys {
		v := fields[k]
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = compactJSON(v)
		}
		fmt.Fprintf(tw, "%s:\t%s\n", sanitize(k), sanitize(s))
	}
	return tw.Flush()
}
