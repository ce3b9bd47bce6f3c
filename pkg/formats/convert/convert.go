// Package convert turns one input file into one BayseFlow file, as `flowctl convert` does: it detects the
// input's format from its content, runs the matching reader through the flow engine or the flow-log
// rules, names the flows with the long-term name cache, and writes the .bf file atomically.
package convert

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowfleet/flowfleet/pkg/atomicfile"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
	"github.com/flowfleet/flowfleet/pkg/formats/pcapfile"
)

// Format names an input format.
type Format string

// The input formats.
const (
	FormatAuto      Format = "auto"
	FormatPcap      Format = "pcap"
	FormatZeek      Format = "zeek"
	FormatInterflow Format = "interflow"
	FormatNetflow   Format = "netflow"
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case "", FormatAuto:
		return FormatAuto, nil
	case FormatPcap, FormatZeek, FormatInterflow, FormatNetflow:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want auto, pcap, zeek, interflow or netflow)", s)
}

// Options controls one conversion.
type Options struct {
	Format Format
	// DNSLog is the Zeek dns.log that goes with a Zeek conn.log ("" for none).
	DNSLog string
	// OutDir is where the .bf file is written ("" for the current directory).
	OutDir string
	// Cache is the long-term name cache (R-CACHE); nil turns it off. The caller loads and saves it.
	Cache *flow.NameCache
	// Location is the time zone NetFlow times are read in (R-NF-5); nil means time.Local.
	Location *time.Location
	// Flow holds the engine's extensions (VLAN decoding, session names).
	Flow flow.Options
	// AllInterfaces reads a merged pcapng on past the interface where libpcap, and so the reference,
	// stop (pcapfile.Options.AllInterfaces): an extension, off by default.
	AllInterfaces bool
	// Progress, when set, is called now and then with the bytes read so far and the input's size.
	Progress func(read, total int64)
	// OutName, when set, replaces the R-OUT-4 name of the output (file name and fileName field).
	OutName string
	// Out, when set, receives the .bf instead of a file in OutDir (Result.Output is then "").
	Out io.Writer
	// NewWriter, when set, writes the output instead of the BayseFlow encoder (a dataset, for
	// example): it is given the output and the name the .bf would have, then the flows in the .bf's
	// order, named, a chunk at a time, then Close. OutExt then replaces the name's ".bf".
	NewWriter func(w io.Writer, bfName string) (FlowWriter, error)
	OutExt    string
}

// FlowWriter receives a conversion's flows (Options.NewWriter). Flows are only valid during the call.
type FlowWriter interface {
	WriteFlows(flows []Flow) error
	// Close flushes; the output is complete after it.
	Close() error
}

// Flow is an engine flow: First and Last absolute, RelativeStart and Duration set, named.
type Flow = flow.Flow

// Result describes a finished conversion.
type Result struct {
	Format   Format
	Input    string
	Output   string  // path of the .bf file written
	Start    float64 // the trafficDate S (flow.NoStart when nothing was learned)
	Flows    int     // flows written
	Frames   uint64  // capture frames read (captures only)
	Stats    flow.Stats
	Warnings []string // conditions that did not stop the conversion (a truncated capture, …)
	// Hints explain inputs that gave fewer flows than a user would expect (tagged frames not decoded,
	// cooked frames the reference's rule drops, a merged pcapng read only up to its second interface).
	Hints []string
	// CacheNamed counts the flows named from the long-term name cache (R-NAME-2 step 3).
	CacheNamed int
	// VLANFrames counts 802.1Q/QinQ-tagged Ethernet frames left undecoded (Options.Flow.DecodeVLAN off).
	VLANFrames uint64
	// CookedNoAddr counts Linux cooked v1 IP frames without a 6-byte link-layer address (tun, ppp, …),
	// which R-DEC-10's layout test drops.
	CookedNoAddr uint64
	// Mixed is set when a pcapng file changed link type, snapshot length, byte order or version and
	// reading stopped there (pcapfile.ErrMixed).
	Mixed bool
	// ReadPastMixed is set when Options.AllInterfaces read on past such a change, so the output holds
	// flows the reference's does not.
	ReadPastMixed bool
	// Read is the time taken to read the input into flows; Write the time to order, name and write them.
	Read, Write time.Duration
}

// ErrUnsupported reports an input whose format is not accepted (R-ERR-1).
var ErrUnsupported = errors.New("unsupported input")

// File converts the input file at path and writes the BayseFlow file.
func File(ctx context.Context, path string, opts Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	format := opts.Format
	if format == "" || format == FormatAuto {
		head := make([]byte, 64*1024)
		n, _ := io.ReadFull(f, head)
		format, err = Detect(head[:n])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return run(ctx, f, st.Size(), path, format, opts)
}

// StdinName is the output name of a conversion of standard input (`flowctl convert -`).
const StdinName = "stdin.bf"

// Reader converts a stream (standard input) whose format is detected from its first 64 KiB unless
// opts.Format names it; name stands for the input in messages and, unless opts.OutName is set, in the
// output's name. Progress is not reported: a stream's size is unknown.
func Reader(ctx context.Context, r io.Reader, name string, opts Options) (*Result, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	format := opts.Format
	if format == "" || format == FormatAuto {
		head, err := br.Peek(64 * 1024)
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if format, err = Detect(head); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	opts.Progress = nil
	return run(ctx, br, -1, name, format, opts)
}

// OutputName returns the name the .bf of the input at path gets (R-OUT-4), detecting its format from
// its content like File does, so that a caller can refuse colliding names before converting anything.
func OutputName(path string, format Format) (string, error) {
	if format == "" || format == FormatAuto {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.IsDir() {
			return "", fmt.Errorf("%s: is a directory", path)
		}
		head := make([]byte, 64*1024)
		n, _ := io.ReadFull(f, head)
		if format, err = Detect(head[:n]); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
	}
	if format == FormatPcap {
		return bayseflow.CaptureFileName(path), nil
	}
	return bayseflow.LogFileName(path), nil
}

// run converts an opened input of a known format; size is its length in bytes (-1 when unknown).
func run(ctx context.Context, f io.Reader, size int64, path string, format Format, opts Options) (*Result, error) {
	var err error
	res := &Result{Format: format, Input: path}
	began := time.Now()
	var in = f
	if opts.Progress != nil && format != FormatPcap {
		in = &progressReader{r: f, total: size, fn: opts.Progress}
	}
	var fileName string
	var write func(w io.Writer) error
	switch format {
	case FormatPcap:
		fileName = bayseflow.CaptureFileName(path)
		if opts.OutName != "" {
			fileName = opts.OutName
		}
		var rd *pcapfile.BatchReader
		rd, err = pcapfile.NewBatchReaderWith(in, pcapfile.Options{AllInterfaces: opts.AllInterfaces})
		if err != nil {
			return nil, fmt.Errorf("%s: %w (R-PCAP-1)", path, err)
		}
		defer rd.Close()
		var ord *flow.Ordered
		if ord, err = convertCapture(ctx, rd, path, size, opts, res); err == nil {
			res.Start, res.Flows = ord.Start(), ord.Len()
			write = func(w io.Writer) error { return writeOrdered(w, ord, fileName, &res.CacheNamed) }
			if opts.NewWriter != nil {
				write = func(w io.Writer) error {
					var buf []flow.Flow
					return writeFlows(w, opts, fileName, ord.Chunks(), func(k int) []flow.Flow {
						buf = ord.Chunk(k, buf)
						res.CacheNamed += countCacheNamed(buf)
						return buf
					})
				}
			}
			defer ord.Done() // the cache learns the answers once every flow was named (R-CACHE-3)
		}
	case FormatZeek, FormatInterflow, FormatNetflow:
		fileName = bayseflow.LogFileName(path)
		if opts.OutName != "" {
			fileName = opts.OutName
		}
		var s flow.Sample
		if s, err = convertLog(ctx, in, path, format, opts); err == nil {
			res.Start, res.Flows = s.Start, len(s.Flows)
			res.CacheNamed = countCacheNamed(s.Flows)
			write = func(w io.Writer) error { return bayseflow.EncodeTo(w, s, fileName, "") }
			if opts.NewWriter != nil {
				write = func(w io.Writer) error {
					return writeFlows(w, opts, fileName, 1, func(int) []flow.Flow { return s.Flows })
				}
			}
		}
	default:
		err = fmt.Errorf("%w: format %q", ErrUnsupported, format)
	}
	if err != nil {
		return nil, err
	}
	res.Read = time.Since(began)
	defer func() { res.Write = time.Since(began) - res.Read }()
	if opts.Out != nil {
		bw := bufio.NewWriterSize(opts.Out, 256*1024)
		if err := write(bw); err != nil {
			return nil, fmt.Errorf("write %s: %w", fileName, err)
		}
		if err := bw.Flush(); err != nil {
			return nil, fmt.Errorf("write %s: %w", fileName, err)
		}
		return res, nil
	}
	outName := fileName
	if opts.NewWriter != nil {
		outName = strings.TrimSuffix(fileName, ".bf") + opts.OutExt
	}
	out := filepath.Join(opts.OutDir, outName)
	// Not synced: a converted file can be made again, and syncing took a sixth of a conversion's time.
	if err := atomicfile.ReplaceFunc(out, 0o644, write); err != nil {
		return nil, fmt.Errorf("write %s: %w", out, err)
	}
	res.Output = out
	return res, nil
}

// writeFlows writes chunks of flows through opts.NewWriter.
func writeFlows(w io.Writer, opts Options, bfName string, chunks int, chunk func(k int) []flow.Flow) error {
	fw, err := opts.NewWriter(w, bfName)
	if err != nil {
		return err
	}
	for k := 0; k < chunks; k++ {
		if err := fw.WriteFlows(chunk(k)); err != nil {
			return err
		}
	}
	return fw.Close()
}

// writeOrdered writes a capture's BayseFlow file while its flows are exported and named: each chunk is
// exported, named and encoded on one of the cores, and the chunks are written in order, so that the
// flow records never all exist at once.
// cacheNamed receives the count of flows named from the name cache.
func writeOrdered(w io.Writer, ord *flow.Ordered, fileName string, cacheNamed *int) error {
	workers := 1
	if ord.Chunks() >= 4 {
		workers = runtime.GOMAXPROCS(0)
	}
	flows := make([][]flow.Flow, workers) // each worker's records, reused for its every chunk
	var named atomic.Int64
	err := bayseflow.EncodeChunks(w, ord.Start(), fileName, "", ord.Chunks(), workers, func(worker, k int) []flow.Flow {
		flows[worker] = ord.Chunk(k, flows[worker])
		named.Add(int64(countCacheNamed(flows[worker])))
		return flows[worker]
	})
	*cacheNamed = int(named.Load())
	return err
}

// countCacheNamed counts the flows named from the long-term name cache.
func countCacheNamed(flows []flow.Flow) int {
	n := 0
	for i := range flows {
		if flows[i].NameSource == flow.SourceCache {
			n++
		}
	}
	return n
}

// Detect names the format of an input from its first bytes (at most the first 64 KiB are given). The
// reference is told the format (R-CLI-1) and then refuses a file whose libmagic type does not fit it;
// Detect names the format whose rule accepts the file, and agrees with the reference on which text is
// a Zeek log (R-ZEEK-1):
//   - a pcap or pcapng magic number is a capture (R-PCAP-1);
//   - JSON (first non-blank byte `{` or `[`) is an Interflow log when it has Interflow members (R-IF-1),
//     else a Zeek log: the reference reads any JSON conn.log, records without Zeek's fields giving none;
//   - text whose first line has five commas or more (and fewer than five tabs) is NetFlow CSV (R-NF-1);
//   - any other text is a Zeek log when libmagic would call it exactly "ASCII text" (see asciiText):
//     headers are optional and fields go by tab (R-ZEEK-2), so the reference reads a Bro-era
//     space-separated log too, to no flows. Other text (UTF-8, CRLF, lines over 300 characters, no
//     line end) the reference refuses as a Zeek log: so does Detect; --format zeek reads it anyway.
//
// An empty input is a Zeek log here, which the Zeek reader then refuses (R-ZEEK-1).
func Detect(head []byte) (Format, error) {
	if pcapfile.IsCapture(head) {
		return FormatPcap, nil
	}
	if len(head) == 0 {
		return FormatZeek, nil
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		// Zeek never writes "srcip"; an Interflow record may carry a "uid" of its own.
		if bytes.Contains(head, []byte(`"srcip"`)) && !bytes.Contains(head, []byte(`"id.orig_h"`)) {
			return FormatInterflow, nil
		}
		if !bytes.Contains(head, []byte(`"id.orig_h"`)) && !bytes.Contains(head, []byte(`"uid"`)) &&
			bytes.Contains(head, []byte(`"_id"`)) {
			return FormatInterflow, nil
		}
		// R-ZEEK-1: "JSON/NDJSON content → JSON". "[]" and JSON without Zeek's fields give the empty
		// sample (R-ZEEK-3, R-OUT-9), as they do in the reference.
		return FormatZeek, nil
	}
	line := trimmed
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if isText(head) && len(line) > 0 && line[0] != '#' && bytes.Count(line, []byte("\t")) < 5 && bytes.Count(line, []byte(",")) >= 5 {
		return FormatNetflow, nil
	}
	switch why := asciiText(head); why {
	case "":
		return FormatZeek, nil
	case notText:
		return "", fmt.Errorf("%w: not a capture (pcap, pcapng), Zeek, Interflow or NetFlow CSV file", ErrUnsupported)
	default:
		return "", fmt.Errorf("%w: text the reference refuses as a Zeek log: libmagic calls it %s, not \"ASCII text\" (R-ZEEK-1); --format zeek reads it anyway",
			ErrUnsupported, why)
	}
}

// notText is asciiText's answer for bytes that are not text at all.
const notText = "data"

// maxTextLine is the longest line libmagic (5.44) still calls plain "ASCII text": from 301 characters on
// it adds ", with very long lines" (R-ZEEK-1).
const maxTextLine = 300

// asciiText returns "" when libmagic would describe b exactly as "ASCII text" (R-ZEEK-1), else what it
// would say instead. libmagic's ASCII set is BEL, BS, TAB, LF, VT, FF, CR, ESC and 0x20–0x7e; a CR, an ESC
// or a BS adds a qualifier (", with CRLF line terminators", ", with escape sequences", ", with
// overstriking"), as do a line longer than maxTextLine and text without any LF. Only b is looked at (the
// first 64 KiB of a file); libmagic looks further.
func asciiText(b []byte) string {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && (c < 0x07 || c > 0x0d) && c != 0x1b || c == 0x7f {
			return notText
		}
	}
	lineLen, lf := 0, false
	for _, c := range b {
		switch {
		case c >= 0x80:
			return "non-ASCII (UTF-8 or other) text"
		case c == '\n':
			lf, lineLen = true, 0
			continue
		case c == '\r':
			return "ASCII text, with CR or CRLF line terminators"
		case c == 0x1b:
			return "ASCII text, with escape sequences"
		case c == 0x08:
			return "ASCII text, with overstriking"
		}
		if lineLen++; lineLen > maxTextLine {
			return "ASCII text, with very long lines"
		}
	}
	if !lf {
		return "ASCII text, with no line terminators"
	}
	return ""
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

type progressReader struct {
	r     io.Reader
	n     int64
	total int64
	fn    func(int64, int64)
	calls int
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.calls++
	if p.calls%8 == 0 || err != nil {
		p.fn(p.n, p.total)
	}
	return n, err
}

// convertCapture runs a capture through the flow engine in one pass (section 3) and returns its flows,
// ordered. Three goroutines share the work: the reader's parses the file's records, this one decodes
// the frames, and the pipeline's keeps the flow table.
func convertCapture(ctx context.Context, rd *pcapfile.BatchReader, path string, size int64, opts Options, res *Result) (*flow.Ordered, error) {
	if link, ok := rd.LinkType(); ok {
		if err := flow.CheckLinkType(link); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	eng := flow.NewEngine(opts.Flow)
	pl := flow.NewPipeline(eng)
	defer pl.Close()
	checked := map[flow.LinkType]bool{}
	var last flow.LinkType // with checked[last], the link type of the previous frame
	for {
		b, ok := rd.Next()
		if !ok {
			return nil, fmt.Errorf("%s: reading stopped", path) // Close was called: not here
		}
		for i := range b.Frames {
			fr := &b.Frames[i]
			if (fr.Link != last || len(checked) == 0) && !checked[fr.Link] {
				if err := flow.CheckLinkType(fr.Link); err != nil {
					b.Release()
					return nil, fmt.Errorf("%s: frame at byte %d: %w", path, fr.Offset, err)
				}
				checked[fr.Link] = true
			}
			last = fr.Link
			countLinkHints(res, fr.Link, fr.Data, !opts.Flow.DecodeVLAN)
			pl.Packet(fr.Link, b.Times[i], fr.Data)
		}
		res.Frames += uint64(len(b.Frames))
		end, err := b.End, b.Err
		b.Release()
		if err != nil {
			res.ReadPastMixed = rd.ReadPastMixed()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, pcapfile.ErrTruncated) || errors.Is(err, pcapfile.ErrDamaged) || errors.Is(err, pcapfile.ErrMixed) { // R-PCAP-2
				res.Mixed = errors.Is(err, pcapfile.ErrMixed)
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: stopped reading at %v; the frames before it were converted", path, err))
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if opts.Progress != nil {
			opts.Progress(end, size)
		}
	}
	pl.Close()
	if res.ReadPastMixed {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: --all-interfaces: read on past an interface of another link type or snapshot length, where the reference stops (R-PCAP-2): this output holds flows the reference's does not", path))
	}
	res.Stats = eng.Stats()
	if res.Stats.Truncated > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d frame(s) too short for their TCP or IPv6 header were skipped (the reference aborts on them, R-DEC-11)", path, res.Stats.Truncated))
	}
	ord := eng.Detach().Order(opts.Cache)
	res.Hints = captureHints(res, ord.Len())
	return ord, nil
}
