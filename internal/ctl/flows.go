package ctl

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

// newFlowsCommand is `flowctl flows`: fleet search over the collector's flow index (docs/search.md).
func newFlowsCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Search the flows of every sample of the fleet",
		Long: `Search the collector's flow index (docs/search.md): which hosts talked to a destination, when, and how
much. Each result is one sample's flows to one destination, newest window first. --dst takes an IP, a
CIDR, a name, or a glob whose "*" stands for exactly one label (*.example.com matches a.example.com, not
example.com nor a.b.example.com). Needs a reader (or admin) certificate.`,
	}
	search := &cobra.Command{
		Use:   "search",
		Short: "List the samples' flows to matching destinations, newest first",
		Example: `  flowctl flows search --dst '*.example.com' --since 24h
  flowctl flows search --dst 203.0.113.0/24 --port 443 -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFlowsSearch(cmd, vp) },
	}
	search.Flags().Int("limit", 1000, "stop after this many results (at most 100000)")
	addOutputFlag(search)
	top := &cobra.Command{
		Use:   "top",
		Short: "Sum the matching flows by one key, most flows first",
		Example: `  flowctl flows top --by dst-name --since 1h
  flowctl flows top --by host --dst evil.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFlowsTop(cmd, vp) },
	}
	top.Flags().String("by", "dst-name", "the key: dst, dst-name, host, port, category")
	top.Flags().Int("limit", 10, "groups to show (at most 10000)")
	addOutputFlag(top)
	for _, c := range []*cobra.Command{search, top} {
		addConnFlags(c)
		c.Flags().StringSlice("host", nil, "only these hosts (repeat or comma-separate)")
		c.Flags().String("src", "", "only flows from this IP or CIDR")
		c.Flags().String("dst", "", "only flows to this IP, CIDR, name or *.glob")
		c.Flags().Int("port", 0, "only flows to this destination port")
		c.Flags().String("proto", "", "only this protocol: tcp, udp, icmp, other")
		c.Flags().String("name-source", "", "only names from: original, passive, cache, session")
		c.Flags().String("category", "", "only flows NetworkSage put in this category")
		c.Flags().String("since", "", "only windows starting at or after this time (RFC 3339, or a duration ago such as 24h)")
		c.Flags().String("until", "", "only windows starting before this time (RFC 3339, or a duration ago)")
	}
	cmd.AddCommand(search, top)
	return cmd
}

func flowFilter(vp *viper.Viper) (*flowfleetv1.FlowFilter, error) {
	port := vp.GetInt("port")
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("--port %d: want 1–65535", port)
	}
	f := &flowfleetv1.FlowFilter{Hosts: vp.GetStringSlice("host"), Src: vp.GetString("src"), Dst: vp.GetString("dst"),
		Port: uint32(port), Protocol: vp.GetString("proto"), NameSource: vp.GetString("name-source"), Category: vp.GetString("category")}
	var err error
	if f.Since, err = parseWhen(vp.GetString("since")); err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if f.Until, err = parseWhen(vp.GetString("until")); err != nil {
		return nil, fmt.Errorf("--until: %w", err)
	}
	return f, nil
}

func flowRowColumns(c clock) []column[*flowfleetv1.FlowRow] {
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []column[*flowfleetv1.FlowRow]{
		{head: "WINDOW", cell: func(r *flowfleetv1.FlowRow) string { return c.second(r.GetWindowStart().AsTime()) }},
		{head: "HOST", cell: func(r *flowfleetv1.FlowRow) string { return sanitize(r.GetHost()) }},
		{head: "SRC", cell: func(r *flowfleetv1.FlowRow) string { return r.GetSrcAddr() }},
		{head: "DST", cell: func(r *flowfleetv1.FlowRow) string { return r.GetDstAddr() }},
		{head: "PORT", cell: func(r *flowfleetv1.FlowRow) string {
			if r.GetDstPort() < 0 {
				return "-"
			}
			return strconv.Itoa(int(r.GetDstPort()))
		}},
		{head: "PROTO", cell: func(r *flowfleetv1.FlowRow) string { return r.GetProtocol() }},
		{head: "DST NAME", cell: func(r *flowfleetv1.FlowRow) string { return sanitize(r.GetDstName()) }},
		{head: "NAME SOURCE", wide: true, cell: func(r *flowfleetv1.FlowRow) string { return r.GetNameSource() }},
		{head: "CATEGORY", cell: func(r *flowfleetv1.FlowRow) string { return sanitize(r.GetCategory()) }},
		{head: "FLOWS", cell: func(r *flowfleetv1.FlowRow) string { return n(r.GetFlows()) }},
		{head: "PACKETS", cell: func(r *flowfleetv1.FlowRow) string { return n(r.GetPackets()) }},
		{head: "BYTES", cell: func(r *flowfleetv1.FlowRow) string { return n(r.GetBytes()) }},
		{head: "SAMPLE", wide: true, cell: func(r *flowfleetv1.FlowRow) string { return r.GetSampleId() }},
	}
}

// flowRowJSON is a search result in JSON: the same camelCase keys, in a fixed order, as every other
// flowctl listing (samples, flows, hosts).
type flowRowJSON struct {
	SampleID         string `json:"sampleId"`
	Host             string `json:"host"`
	WindowStart      string `json:"windowStart"`
	WindowStartEpoch int64  `json:"windowStartEpoch"`
	SrcAddr          string `json:"srcAddr"`
	DstAddr          string `json:"dstAddr"`
	DstPort          *int   `json:"dstPort"` // null for ICMP
	Protocol         string `json:"protocol"`
	DstName          string `json:"dstName"`
	NameSource       string `json:"nameSource"`
	Category         string `json:"category"`
	Flows            int64  `json:"flows"`
	Packets          int64  `json:"packets"`
	Bytes            int64  `json:"bytes"`
}

func flowRowToJSON(r *flowfleetv1.FlowRow) any {
	j := flowRowJSON{SampleID: r.GetSampleId(), Host: r.GetHost(), WindowStart: rfc3339(r.GetWindowStart().AsTime()),
		WindowStartEpoch: r.GetWindowStart().GetSeconds(), SrcAddr: r.GetSrcAddr(), DstAddr: r.GetDstAddr(),
		Protocol: r.GetProtocol(), DstName: r.GetDstName(), NameSource: r.GetNameSource(), Category: r.GetCategory(),
		Flows: r.GetFlows(), Packets: r.GetPackets(), Bytes: r.GetBytes()}
	if p := r.GetDstPort(); p >= 0 {
		port := int(p)
		j.DstPort = &port
	}
	return j
}

func runFlowsSearch(cmd *cobra.Command, vp *viper.Viper) error {
	f, err := flowFilter(vp)
	if err != nil {
		return err
	}
	limit := vp.GetInt("limit")
	if limit < 1 || limit > 100_000 {
		return fmt.Errorf("--limit %d: want 1–100000", limit)
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
	ctx, cancel := timeoutCtx(cmd.Context(), vp)
	defer cancel()
	stream, err := flowfleetv1.NewFlowServiceClient(conn).SearchFlows(ctx, &flowfleetv1.SearchFlowsRequest{Filter: f, Limit: uint32(limit)})
	if err != nil {
		return friendly(err, addr)
	}
	p := newRowPrinter(cmd.OutOrStdout(), out, flowRowColumns(clockOf(vp)), flowRowToJSON)
	rows, limited := 0, false
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return friendly(err, addr)
		}
		for _, r := range m.GetRows() {
			if err := p.print(r); err != nil {
				return err
			}
			rows++
		}
		limited = m.GetLimited()
	}
	if err := p.close(); err != nil {
		return err
	}
	switch {
	case limited:
		fmt.Fprintf(cmd.ErrOrStderr(), "stopped at --limit %d: there are more results\n", limit)
	case rows == 0 && (out == outTable || out == outWide):
		fmt.Fprintln(cmd.ErrOrStderr(), "no flows")
	}
	return nil
}

func runFlowsTop(cmd *cobra.Command, vp *viper.Viper) error {
	f, err := flowFilter(vp)
	if err != nil {
		return err
	}
	limit := vp.GetInt("limit")
	if limit < 1 || limit > 10_000 {
		return fmt.Errorf("--limit %d: want 1–10000", limit)
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
	ctx, cancel := timeoutCtx(cmd.Context(), vp)
	defer cancel()
	by := vp.GetString("by")
	resp, err := flowfleetv1.NewFlowServiceClient(conn).TopFlows(ctx, &flowfleetv1.TopFlowsRequest{Filter: f, By: by, Limit: uint32(limit)})
	if err != nil {
		return friendly(err, addr)
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	cols := []column[*flowfleetv1.FlowGroup]{
		{head: "KEY", cell: func(g *flowfleetv1.FlowGroup) string { return sanitize(g.GetKey()) }},
		{head: "HOSTS", cell: func(g *flowfleetv1.FlowGroup) string { return n(g.GetHosts()) }},
		{head: "FLOWS", cell: func(g *flowfleetv1.FlowGroup) string { return n(g.GetFlows()) }},
		{head: "PACKETS", cell: func(g *flowfleetv1.FlowGroup) string { return n(g.GetPackets()) }},
		{head: "BYTES", cell: func(g *flowfleetv1.FlowGroup) string { return n(g.GetBytes()) }},
	}
	toJSON := func(g *flowfleetv1.FlowGroup) any {
		return map[string]any{by: g.GetKey(), "hosts": g.GetHosts(), "flows": g.GetFlows(), "packets": g.GetPackets(), "bytes": g.GetBytes()}
	}
	return printAll(cmd.OutOrStdout(), out, cols, toJSON, resp.GetGroups())
}
