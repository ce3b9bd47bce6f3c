package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/dataset"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/pkg/atomicfile"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// maxShowBytes bounds the BayseFlow file `flowctl show` reads into memory.
const maxShowBytes = 1 << 30

func newShowCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show [flags] FILE.bf",
		Short: "Print the flows of a local BayseFlow file",
		Long: `Print the flows of a BayseFlow (.bf) file, such as 'flowctl convert' writes, with the same columns
and JSON as 'flowctl samples flows'.

A .bf file holds each flow's destination name but not its address: DST ADDR (dstAddr in JSON) is the
destination when its name source is "original" (the name is the address) and empty otherwise. Start
times are the file's trafficDate plus each flow's relativeStart; windowStart is 0 (a file is no
sample of a window). A duration the file writes as -1 (unknown, NetFlow) shows as 0.

--to csv|jsonl|parquet writes the flows as a dataset instead (docs/dataset.md: the schema fleet exports
share; host and window_start are empty, sample_id is the file's name), to standard output or to the file
-f names (replaced whole, or not at all).`,
		Example: `  flowctl show capture_filtered.bf
  flowctl show -o wide --utc capture_filtered.bf
  flowctl show -o jsonl capture_filtered.bf | jq -r .dstName | sort | uniq -c
  flowctl show --to parquet -f capture.parquet capture_filtered.bf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShow(cmd, vp, args[0])
		},
	}
	addOutputFlag(cmd)
	cmd.Flags().String("to", "", "write a dataset instead of a listing: csv, jsonl or parquet (docs/dataset.md)")
	cmd.Flags().StringP("file", "f", "", "with --to: the file to write (default: standard output)")
	return cmd
}

func runShow(cmd *cobra.Command, vp *viper.Viper, path string) error {
	to, file := vp.GetString("to"), vp.GetString("file")
	if to != "" {
		df, err := dataset.ParseFormat(to)
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		if cmd.Flags().Changed("output") {
			return errors.New("--to writes a dataset; -o/--output chooses a listing's format: give one of them")
		}
		flows, err := readBayseFlowFile(path)
		if err != nil {
			return err
		}
		return writeDataset(cmd.OutOrStdout(), file, df, flows, dataset.Meta{SampleID: filepath.Base(path)})
	}
	if file != "" {
		return errors.New("-f/--file names the file --to writes: add --to csv, jsonl or parquet")
	}
	out, err := outputFormat(vp)
	if err != nil {
		return err
	}
	flows, err := readBayseFlowFile(path)
	if err != nil {
		return err
	}
	return printAll(cmd.OutOrStdout(), out, flowColumns(clockOf(vp)), flowToJSON, flows)
}

// writeDataset writes flows as a dataset to file (atomically), or to stdout when file is "".
func writeDataset(stdout io.Writer, file string, df dataset.Format, flows []*flowfleetv1.Flow, meta dataset.Meta) error {
	write := func(w io.Writer) error {
		dw, err := dataset.NewWriter(df, w)
		if err != nil {
			return err
		}
		for _, f := range flows {
			if err := dw.Write(dataset.FromProto(f, meta)); err != nil {
				return err
			}
		}
		return dw.Close()
	}
	if file == "" {
		return write(stdout)
	}
	if err := atomicfile.ReplaceFunc(file, 0o644, write); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// readBayseFlowFile reads a .bf file's flows as API flows.
func readBayseFlowFile(path string) ([]*flowfleetv1.Flow, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read BayseFlow file: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	if st.Size() > maxShowBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d show reads", path, st.Size(), maxShowBytes)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read BayseFlow file: %w", err)
	}
	f, err := bayseflow.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	start, err := strconv.ParseFloat(f.TrafficDate, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: trafficDate %q: %w", path, f.TrafficDate, err)
	}
	flows := make([]*flowfleetv1.Flow, 0, len(f.Flows))
	for i := range f.Flows {
		fl, err := rowToFlow(&f.Flows[i], start)
		if err != nil {
			return nil, fmt.Errorf("%s: flow %d: %w", path, i+1, err)
		}
		flows = append(flows, flowpb.ToProto(&fl, 0))
	}
	return flows, nil
}

// rowToFlow turns a decoded BayseFlow row back into an engine flow (see the show command's help for
// what a row lacks).
func rowToFlow(r *bayseflow.Row, start float64) (flow.Flow, error) {
	f := flow.Flow{Protocol: flow.Protocol(r.ProtocolInformation), Identifier: r.Identifier,
		NameSource: flow.NameSource(r.DestinationNameSource)}
	icmp := f.Protocol == flow.ProtoICMP
	f.SrcAddr, f.SrcPort = splitEndpoint(r.Src, icmp)
	f.Name, f.DstPort = splitEndpoint(r.Dst, icmp)
	if f.NameSource == flow.SourceOriginal {
		f.DstAddr = f.Name
	}
	ints := []struct {
		n   *int64
		num string
		key string
	}{{&f.SrcPkts, r.SrcPkts.String(), "srcPkts"}, {&f.SrcBytes, r.SrcBytes.String(), "srcBytes"},
		{&f.DstPkts, r.DstPkts.String(), "dstPkts"}, {&f.DstBytes, r.DstBytes.String(), "dstBytes"}}
	for _, x := range ints {
		v, err := strconv.ParseInt(x.num, 10, 64)
		if err != nil {
			return f, fmt.Errorf("%s %q: %w", x.key, x.num, err)
		}
		*x.n = v
	}
	rel, err := strconv.ParseFloat(r.RelativeStart.String(), 64)
	if err != nil {
		return f, fmt.Errorf("relativeStart %q: %w", r.RelativeStart, err)
	}
	dur, err := strconv.ParseFloat(r.Duration.String(), 64)
	if err != nil {
		return f, fmt.Errorf("duration %q: %w", r.Duration, err)
	}
	if dur < 0 {
		dur = 0 // -1: unknown (R-NF-8)
	}
	f.First = start + rel
	f.Last = f.First + dur
	return f, nil
}

// splitEndpoint splits "addr:port" at its last colon (IPv6 addresses have colons of their own); an
// ICMP endpoint has no port.
func splitEndpoint(s string, icmp bool) (string, string) {
	if icmp {
		return s, ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}
