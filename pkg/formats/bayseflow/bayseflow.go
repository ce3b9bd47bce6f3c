// Package bayseflow writes and reads BayseFlow files (.bf): one JSON object with a random hash, the
// trafficDate, the fileName and the flows, laid out byte for byte as the reference's Python json.dumps
// writes it (section 1 of docs/bayseflow.md).
package bayseflow

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/internal/ordered"
	"github.com/flowfleet/flowfleet/pkg/internal/pynum"
)

// NewHash returns a random version-4 UUID without dashes (R-OUT-2).
func NewHash() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return hex.EncodeToString(b[:])
}

// Encode returns the BayseFlow file for a finished sample (R-OUT-1 … R-OUT-6, R-NUM-1, R-NUM-2).
// hash may be "" for a fresh random one.
func Encode(s flow.Sample, fileName, hash string) []byte {
	var buf bytes.Buffer
	buf.Grow(128 + len(s.Flows)*200)
	_ = EncodeTo(&buf, s, fileName, hash)
	return buf.Bytes()
}

// EncodeTo writes the BayseFlow file for a finished sample to w, a chunk of flows at a time, so that
// memory does not grow with the size of the file. A large sample's chunks are encoded on every core
// and written in order.
func EncodeTo(w io.Writer, s flow.Sample, fileName, hash string) error {
	workers := 1
	if len(s.Flows) >= 2*encodeChunk {
		workers = runtime.GOMAXPROCS(0)
	}
	chunks := (len(s.Flows) + encodeChunk - 1) / encodeChunk
	return EncodeChunks(w, s.Start, fileName, hash, chunks, workers, func(_, k int) []flow.Flow {
		from := k * encodeChunk
		return s.Flows[from:min(from+encodeChunk, len(s.Flows))]
	})
}

// EncodeChunks writes a BayseFlow file whose flows come a chunk at a time: chunk returns chunk k
// (k = 0 … chunks-1). It is called on up to workers goroutines, worker w for k = w, w+workers, … in turn
// (so a worker may reuse its memory from one of its chunks to the next); each chunk is encoded where it
// is made, and the chunks are written in order. hash "" means a fresh random one.
func EncodeChunks(w io.Writer, start float64, fileName, hash string, chunks, workers int, chunk func(worker, k int) []flow.Flow) error {
	if _, err := w.Write(AppendHeader(nil, start, fileName, hash)); err != nil {
		return err
	}
	err := ordered.Run(chunks, workers, func(worker, k int, b []byte) ([]byte, error) {
		return AppendFlows(b, chunk(worker, k), k == 0), nil
	}, func(b []byte) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	_, err = w.Write(AppendTrailer(nil))
	return err
}

// encodeChunk is the number of flows encoded into one buffer (about 2 MiB).
const encodeChunk = 8192

// AppendHeader appends the start of a BayseFlow file, up to its first flow: the hash ("" for a fresh
// random one), the trafficDate S and the fileName (R-OUT-1 … R-OUT-3). AppendFlows and AppendTrailer
// complete it.
func AppendHeader(b []byte, start float64, fileName, hash string) []byte {
	if hash == "" {
		hash = NewHash()
	}
	b = append(b, `{"hash": `...)
	b = appendString(b, hash)
	b = append(b, `, "trafficDate": `...)
	b = appendString(b, pynum.Repr(start))
	b = append(b, `, "fileName": `...)
	b = appendString(b, fileName)
	return append(b, `, "BayseFlows": [`...)
}

// AppendFlows appends flows, each preceded by the separator unless first says that the file's first
// flow opens the chunk.
func AppendFlows(b []byte, flows []flow.Flow, first bool) []byte {
	for i := range flows {
		if i > 0 || !first {
			b = append(b, ", "...)
		}
		b = AppendFlow(b, &flows[i])
	}
	return b
}

// AppendTrailer appends the end of a BayseFlow file, after its last flow.
func AppendTrailer(b []byte) []byte { return append(b, "]}"...) }

// AppendFlow appends one flow object (R-OUT-5).
func AppendFlow(b []byte, f *flow.Flow) []byte {
	icmp := f.Protocol == flow.ProtoICMP
	name := f.Name
	if name == "" && f.NameSource == "" { // never named: the address (R-NAME-2 step 5)
		// fix: a flow *named* "" (a passive name filed under Q = "", R-DNS-3/R-DNS-7) was written with
		// its address; the reference writes the empty name, "dst": ":443".
		name = f.DstAddr
	}
	b = append(b, `{"src": "`...)
	b = appendEscaped(b, f.SrcAddr)
	if !icmp {
		b = append(b, ':')
		b = appendEscaped(b, f.SrcPort)
	}
	b = append(b, `", "dst": "`...)
	b = appendEscaped(b, name)
	if !icmp {
		b = append(b, ':')
		b = appendEscaped(b, f.DstPort)
	}
	src := f.NameSource
	if src == "" {
		src = flow.SourceOriginal
	}
	b = append(b, `", "destinationNameSource": `...)
	b = appendString(b, string(src))
	b = append(b, `, "srcPkts": `...)
	b = strconv.AppendInt(b, f.SrcPkts, 10)
	b = append(b, `, "srcBytes": `...)
	b = strconv.AppendInt(b, f.SrcBytes, 10)
	b = append(b, `, "dstPkts": `...)
	b = strconv.AppendInt(b, f.DstPkts, 10)
	b = append(b, `, "dstBytes": `...)
	b = strconv.AppendInt(b, f.DstBytes, 10)
	b = append(b, `, "relativeStart": `...)
	b = appendNumber(b, f.RelativeStart)
	b = append(b, `, "protocolInformation": `...)
	b = appendString(b, string(f.Protocol))
	b = append(b, `, "identifier": `...)
	b = appendString(b, f.Identifier)
	b = append(b, `, "duration": `...)
	if f.DurationUnknown {
		b = append(b, "-1"...)
	} else {
		b = appendNumber(b, f.Duration)
	}
	return append(b, '}')
}

// appendString writes s as Python's json.dumps does with ensure_ascii: non-ASCII as \uXXXX (surrogate
// pairs above U+FFFF), control characters escaped, '/' not escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped writes the body of a JSON string, escaped as appendString says.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return appendEscapedSlow(append(b, s[:i]...), s[i:])
		}
	}
	return append(b, s...) // printable ASCII only: addresses, ports, most names
}

func appendEscapedSlow(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				// Python's ensure_ascii escapes everything outside ' '..'~', so DEL (0x7f) too; it can
				// reach the output through DNS names, which R-DNS-6 uses verbatim (fix: was written raw).
				if c < 0x20 || c == 0x7f {
					b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xF])
				} else {
					b = append(b, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xFFFF {
			r -= 0x10000
			hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
			b = appendU(b, hi)
			b = appendU(b, lo)
			continue
		}
		b = appendU(b, r)
	}
	return b
}

// appendNumber writes a double as Python's json.dumps does: repr, except NaN, Infinity and -Infinity
// (fix: repr's "nan"/"inf" were written, which is neither the reference's output nor JSON any reader
// accepts; a Zeek ts or duration of "nan"/"inf" parses as a number in both Python and Go).
func appendNumber(b []byte, x float64) []byte {
	switch {
	case math.IsNaN(x):
		return append(b, "NaN"...)
	case math.IsInf(x, 1):
		return append(b, "Infinity"...)
	case math.IsInf(x, -1):
		return append(b, "-Infinity"...)
	}
	return pynum.AppendRepr(b, x)
}

func appendU(b []byte, r rune) []byte {
	const hexd = "0123456789abcdef"
	return append(b, '\\', 'u', hexd[r>>12&0xF], hexd[r>>8&0xF], hexd[r>>4&0xF], hexd[r&0xF])
}

// CaptureFileName names the output of a capture input (R-OUT-4): "_filtered" before the last dot of the
// base name, then the extension replaced by ".bf".
func CaptureFileName(input string) string {
	base := filepath.Base(input)
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		return base[:i] + "_filtered.bf"
	}
	return base + "_filtered.bf"
}

// LogFileName names the output of a Zeek, Interflow or NetFlow input (R-OUT-4): the base name cut at its
// last dot, plus ".bf".
func LogFileName(input string) string {
	base := filepath.Base(input)
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		return base[:i] + ".bf"
	}
	return base + ".bf"
}

// File is a decoded BayseFlow file.
type File struct {
	Hash        string `json:"hash"`
	TrafficDate string `json:"trafficDate"`
	FileName    string `json:"fileName"`
	Flows       []Row  `json:"BayseFlows"`
}

// Row is one flow of a decoded BayseFlow file, numbers kept as written.
type Row struct {
	Src                   string      `json:"src"`
	Dst                   string      `json:"dst"`
	DestinationNameSource string      `json:"destinationNameSource"`
	SrcPkts               json.Number `json:"srcPkts"`
	SrcBytes              json.Number `json:"srcBytes"`
	DstPkts               json.Number `json:"dstPkts"`
	DstBytes              json.Number `json:"dstBytes"`
	RelativeStart         json.Number `json:"relativeStart"`
	ProtocolInformation   string      `json:"protocolInformation"`
	Identifier            string      `json:"identifier"`
	Duration              json.Number `json:"duration"`
	// Label is the optional member a labeling step adds to a flow (R-LAB-1; flowctl samples get
	// --labeled sets it to the flow's NetworkSage category); "" when absent, and then not written.
	Label string `json:"label,omitempty"`
}

// Decode parses a BayseFlow file.
func Decode(data []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("bayseflow: %w", err)
	}
	return &f, nil
}

// EncodeFile writes a decoded file back as JSON (labels included), numbers as they were written and
// strings escaped as JSON requires (HTML characters are not escaped).
func EncodeFile(w io.Writer, f *File) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("bayseflow: %w", err)
	}
	return nil
}
