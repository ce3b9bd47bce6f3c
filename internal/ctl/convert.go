package ctl

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/term"

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
		Use:   "convert [flags] INPUT",
		Short: "Convert a capture or flow log into a BayseFlow file",
		Long: `Convert one input file into one BayseFlow (.bf) file, exactly as bayse-tools 1.0.5 does.

The format is detected from the file's content (--format auto): PCAP (microsecond or nanosecond, either
byte order), PCAPNG, CAP; Zeek conn.log in TSV or JSON, with its dns.log given by --dns; Interflow JSON;
NetFlow v9 CSV (nfdump). The output is named like the reference names it: x.pcapng → x_filtered.bf,
x.conn.log → x.conn.bf, x.netflow → x.bf, and written into --output-dir.

Destinations are named from the DNS answers in the input and from the long-term name cache
(--name-cache), which every conversion also updates. NetFlow times are local times of the zone in TZ
(or --tz), as the reference reads them.`,
		Example: `  flowctl convert capture.pcapng
  flowctl convert --dns dns.log -d out/ conn.log
  TZ=America/New_York flowctl convert flows.netflow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConvert(cmd, vp, args[0])
		},
	}
	f := cmd.Flags()
	f.String("dns", "", "Zeek dns.log that goes with a Zeek conn.log")
	f.StringP("output-dir", "d", ".", "directory the .bf file is written to")
	f.String("format", "auto", "input format: auto, pcap, zeek, interflow or netflow")
	f.String("name-cache", DefaultNameCachePath(), `long-term name cache file ("" turns it off)`)
	f.String("tz", "", "time zone NetFlow times are read in (default: TZ, else the local zone)")
	f.Bool("decode-vlan", false, "decode 802.1Q/QinQ-tagged frames (the reference ignores them)")
	f.Bool("session-names", false, "name destinations from TLS SNI and HTTP Host (the reference does not)")
	f.BoolP("quiet", "q", false, "print nothing but errors: no progress bar, no summary")
	return cmd
}

func runConvert(cmd *cobra.Command, vp *viper.Viper, input string) error {
	format, err := convert.ParseFormat(vp.GetString("format"))
	if err != nil {
		return err
	}
	quiet := vp.GetBool("quiet")
	stderr := cmd.ErrOrStderr()
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
	}
	if tz := vp.GetString("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return fmt.Errorf("--tz: %w", err)
		}
		opts.Location = loc
	}
	if st, err := os.Stat(opts.OutDir); err != nil || !st.IsDir() {
		return fmt.Errorf("output directory %q does not exist or is not a directory", opts.OutDir)
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
	var bar *progressbar.ProgressBar
	if !quiet && isTerminal(stderr) {
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
	res, err := convert.File(cmd.Context(), input, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if cache != nil && res.Flows > 0 {
		if err := cache.Save(); err != nil {
			fmt.Fprintln(stderr, "flowctl: warning:", err)
		}
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "flowctl: warning:", w)
	}
	if !quiet {
		elapsed := time.Since(began)
		if res.Format == convert.FormatPcap {
			fmt.Fprintf(stderr, "%s: %d packets, %d flows → %s in %s (%.0f packets/s; read %s, written %s)\n", input,
				res.Frames, res.Flows, res.Output, elapsed.Round(time.Millisecond), float64(res.Frames)/elapsed.Seconds(),
				res.Read.Round(time.Millisecond), res.Write.Round(time.Millisecond))
		} else {
			fmt.Fprintf(stderr, "%s: %d flows → %s in %s\n", input, res.Flows, res.Output, elapsed.Round(time.Millisecond))
		}
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
