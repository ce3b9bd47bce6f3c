package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/term"

	"github.com/flowfleet/flowfleet/internal/dataset"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/convert"
)

// DefaultNameCachePath is where the long-term name cache lives unless --name-cache says otherwise.
func DefaultNameCachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "flowfleet", "longTermPassiveDNS.txt")
}

func newConvertCommand(vp *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert [flags] INPUT...",
		Short: "Convert captures or flow logs into BayseFlow files",
		Long: `Convert each input file into one BayseFlow (.bf) file, exactly as bayse-tools 1.0.5 does.

The format is detected from the file's content (--format auto): PCAP (microsecond or nanosecond, either
byte order), PCAPNG, CAP; Zeek conn.log in TSV or JSON, with its dns.log given by --dns; Interflow JSON;
NetFlow v9 CSV (nfdump). The output is named like the reference names it: x.pcapng → x_filtered.bf,
x.conn.log → x.conn.bf, x.netflow → x.bf, and written into --output-dir.

Several inputs are converted in turn, each with a summary line; a failing input is reported and the
others are still converted, and the exit status is non-zero if any failed. Inputs whose outputs would get
the same name (reddit.csv and reddit.netflow both give reddit.bf) are refused before anything is written,
unless --force (the later input's file then replaces the earlier's). "-" reads standard input (a capture
or a log, detected from its content) into stdin.bf; --stdout writes the one input's .bf to standard
output instead, and the summary goes to standard error. --strict makes an input that gives no flows a
failure. Hints on standard error explain captures that give fewer flows than expected.

--to csv|jsonl|parquet writes the flows as a dataset instead (docs/dataset.md: the schema fleet exports
share; host and window_start are empty, sample_id is the name the .bf would have), named like the .bf
with its extension: x.pcapng → x_filtered.csv. --stdout works with --to too.

Destinations are named from the DNS answers in the input and from the long-term name cache
(--name-cache), which every conversion also updates; the summary counts the flows the cache named, since
they make results depend on earlier runs. NetFlow times are local times of the zone in TZ (or --tz), as
the reference reads them.`,
		Example: `  flowctl convert capture.pcapng
  flowctl convert -o out/ a.pcap b.pcapng logs/*.log
  flowctl convert --dns dns.log -o out/ conn.log
  tcpdump -w - -c 1000 | flowctl convert --stdout - | jq .trafficDate
  TZ=America/New_York flowctl convert flows.netflow
  flowctl convert --to parquet -o datasets/ captures/*.pcapng`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConvert(cmd, vp, args)
		},
	}
	f := cmd.Flags()
	f.String("dns", "", "Zeek dns.log that goes with a Zeek conn.log")
	f.StringP("output-dir", "o", ".", "directory the .bf files are written to (on convert, which writes files and prints no listing, -o names this directory)")
	f.String("format", "auto", "input format: auto, pcap, zeek, interflow or netflow")
	f.String("name-cache", DefaultNameCachePath(), `long-term name cache file ("" turns it off)`)
	f.String("tz", "", "time zone NetFlow times are read in (default: TZ, else the local zone)")
	f.Bool("decode-vlan", false, "decode 802.1Q/QinQ-tagged frames (the reference ignores them)")
	f.Bool("session-names", false, "name destinations from TLS SNI and HTTP Host (the reference does not)")
	f.String("to", "", "write a dataset instead of a .bf: csv, jsonl or parquet (docs/dataset.md); the output is <name>.csv, .jsonl or .parquet")
	f.Bool("all-interfaces", false, "read a pcapng merged from captures of different link types or snapshot lengths to its end (the reference stops at the second interface)")
	f.BoolP("quiet", "q", false, "print nothing but errors: no progress bar, no summary, no hints")
	f.Bool("stdout", false, "write the .bf to standard output (one input only)")
	f.Bool("force", false, "convert inputs whose output names collide (the later replaces the earlier)")
	f.Bool("strict", false, "fail an input that gives no flows")
	return cmd
}

// maxConvertInputs bounds the inputs of one call (a shell glob can expand to very many).
const maxConvertInputs = 100000

func runConvert(cmd *cobra.Command, vp *viper.Viper, inputs []string) error {
	format, err := convert.ParseFormat(vp.GetString("format"))
	if err != nil {
		return err
	}
	quiet, toStdout, strict := vp.GetBool("quiet"), vp.GetBool("stdout"), vp.GetBool("strict")
	stderr := cmd.ErrOrStderr()
	if len(inputs) > maxConvertInputs {
		return fmt.Errorf("%d inputs: at most %d in one call", len(inputs), maxConvertInputs)
	}
	if toStdout && len(inputs) != 1 {
		return fmt.Errorf("--stdout takes exactly one input, not %d", len(inputs))
	}
	stdins := 0
	for _, in := range inputs {
		if in == "-" {
			stdins++
		}
	}
	if stdins > 1 {
		return errors.New(`"-" (standard input) can be given only once`)
	}
	if os.Getenv("GOGC") == "" {
		// A conversion keeps its flow table to the end and produces little else, so collections mostly
		// scan what stays. Collecting less often costs little memory here (see docs/conversion.md).
		debug.SetGCPercent(400)
	}
	opts := convert.Options{
		Format: format,
		DNSLog: vp.GetString("dns"),
		OutDir: vp.GetString("output-dir"),
		Flow: flow.Options{
			DecodeVLAN:   vp.GetBool("decode-vlan"),
			SessionNames: vp.GetBool("session-names"),
		},
		AllInterfaces: vp.GetBool("all-interfaces"),
	}
	if to := vp.GetString("to"); to != "" {
		df, err := dataset.ParseFormat(to)
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		opts.OutExt = df.Ext()
		opts.NewWriter = func(w io.Writer, bfName string) (convert.FlowWriter, error) {
			dw, err := dataset.NewWriter(df, w)
			if err != nil {
				return nil, err
			}
			// Offline: no host, no window; the sample is the .bf this conversion would write.
			return dataset.NewFlowWriter(dw, dataset.Meta{SampleID: bfName}), nil
		}
	}
	if tz := vp.GetString("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return fmt.Errorf("--tz: %w", err)
		}
		opts.Location = loc
	}
	if toStdout {
		opts.Out = cmd.OutOrStdout()
	} else {
		if st, err := os.Stat(opts.OutDir); err != nil || !st.IsDir() {
			return fmt.Errorf("output directory %q does not exist or is not a directory", opts.OutDir)
		}
		if err := checkCollisions(inputs, format, vp.GetBool("force"), stderr); err != nil {
			return err
		}
	}
	cachePath := vp.GetString("name-cache")
	var cache *flow.NameCache
	if cachePath != "" {
		cache, err = flow.LoadNameCache(cachePath)
		if err != nil {
			fmt.Fprintln(stderr, "flowctl: warning:", err)
		}
		opts.Cache = cache
	}
	var failed []string
	var lastErr error
	for _, input := range inputs {
		if err := cmd.Context().Err(); err != nil {
			return err
		}
		err := convertOne(cmd, opts, input, quiet, strict)
		if err != nil {
			failed = append(failed, input)
			lastErr = err
			if len(inputs) > 1 {
				fmt.Fprintln(stderr, "flowctl:", err)
			}
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(inputs) == 1:
		return lastErr
	}
	return fmt.Errorf("%d of %d inputs failed: %s", len(failed), len(inputs), strings.Join(failed, ", "))
}

// checkCollisions refuses inputs whose outputs would get the same name, before anything is written;
// with force it only warns. Inputs whose name cannot be known (missing, unsupported) are left to fail
// in their turn.
func checkCollisions(inputs []string, format convert.Format, force bool, stderr io.Writer) error {
	if len(inputs) < 2 {
		return nil
	}
	byName := make(map[string][]string)
	for _, in := range inputs {
		name := convert.StdinName
		if in != "-" {
			n, err := convert.OutputName(in, format)
			if err != nil {
				continue
			}
			name = n
		}
		byName[name] = append(byName[name], in)
	}
	var clashes []string
	for name, ins := range byName {
		if len(ins) > 1 {
			clashes = append(clashes, fmt.Sprintf("%s ← %s", name, strings.Join(ins, ", ")))
		}
	}
	if len(clashes) == 0 {
		return nil
	}
	sort.Strings(clashes)
	if force {
		for _, c := range clashes {
			fmt.Fprintln(stderr, "flowctl: warning: --force: the later input's file replaces the earlier's:", c)
		}
		return nil
	}
	return fmt.Errorf("output names collide, nothing was written (--force converts them anyway, the later replacing the earlier):\n  %s",
		strings.Join(clashes, "\n  "))
}

// convertOne converts one input ("-" for standard input) and prints its warnings, hints and summary.
func convertOne(cmd *cobra.Command, opts convert.Options, input string, quiet, strict bool) error {
	stderr := cmd.ErrOrStderr()
	var bar *progressbar.ProgressBar
	if !quiet && input != "-" && isTerminal(stderr) {
		opts.Progress = func(read, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr),
					progressbar.OptionShowBytes(true), progressbar.OptionSetDescription("reading "+filepath.Base(input)),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
			}
			_ = bar.Set64(read)
		}
	}
	began := time.Now()
	var res *convert.Result
	var err error
	if input == "-" {
		opts.OutName = convert.StdinName
		res, err = convert.Reader(cmd.Context(), cmd.InOrStdin(), "stdin", opts)
	} else {
		res, err = convert.File(cmd.Context(), input, opts)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if opts.Cache != nil && res.Flows > 0 {
		if err := opts.Cache.Save(); err != nil {
			fmt.Fprintln(stderr, "flowctl: warning:", err)
		}
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "flowctl: warning:", w)
	}
	if !quiet {
		for _, h := range res.Hints {
			fmt.Fprintln(stderr, "flowctl: hint:", h)
		}
		printSummary(stderr, res, opts.Cache != nil, time.Since(began))
	}
	if strict && res.Flows == 0 {
		return fmt.Errorf("%s: no flows (--strict)", res.Input)
	}
	return nil
}

func printSummary(w io.Writer, res *convert.Result, cacheOn bool, elapsed time.Duration) {
	out := res.Output
	if out == "" {
		out = "standard output"
	}
	cache := "name cache off"
	switch {
	case !cacheOn:
	case res.CacheNamed == 0:
		cache = "no flow named from the name cache"
	default:
		cache = fmt.Sprintf("%d flow(s) named from the name cache", res.CacheNamed)
	}
	if res.Format == convert.FormatPcap {
		fmt.Fprintf(w, "%s: %d packets, %d flows → %s in %s (%.0f packets/s; read %s, written %s); %s\n", res.Input,
			res.Frames, res.Flows, out, elapsed.Round(time.Millisecond), float64(res.Frames)/elapsed.Seconds(),
			res.Read.Round(time.Millisecond), res.Write.Round(time.Millisecond), cache)
	} else {
		fmt.Fprintf(w, "%s: %d flows → %s in %s; %s\n", res.Input, res.Flows, out, elapsed.Round(time.Millisecond), cache)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
