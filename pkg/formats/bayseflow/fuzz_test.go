//go:build unix

package bayseflow

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/internal/pynum"
)

// update regenerates the seed corpus in testdata/fuzz/FuzzEncodeDecode.
var update = flag.Bool("update", false, "regenerate the fuzz seed corpus in testdata/fuzz")

const fuzzTimeLimit = time.Second

// withinLimit runs fn and fails the input when it uses more than fuzzTimeLimit of CPU time. CPU time,
// not wall time, because the fuzzers share the machine with other work and a loaded machine would
// otherwise fail innocent inputs. An input that never returns is caught by the watchdog (wall time),
// which crashes the process; the fuzzer then records the input.
func withinLimit(t *testing.T, fn func()) {
	t.Helper()
	watchdog := time.AfterFunc(30*fuzzTimeLimit, func() {
		panic(fmt.Sprintf("fuzz input still running after %v", 30*fuzzTimeLimit))
	})
	wall, cpu := time.Now(), cpuTime()
	fn()
	watchdog.Stop()
	if used := cpuTime() - cpu; used > fuzzTimeLimit {
		t.Fatalf("input used %v of CPU (%v wall), more than %v", used, time.Since(wall), fuzzTimeLimit)
	}
}

// cpuTime returns the CPU time (user and system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fuzzArgs is one FuzzEncodeDecode input.
type fuzzArgs struct {
	src, srcPort, dst, dstPort, name, id, source, fileName, hash string
	proto                                                        uint8
	sp, sb, dp, db                                               int64
	rel, dur, start                                              float64
}

var protos = []flow.Protocol{flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoOther}

// norm is what a string reads back as: invalid UTF-8 bytes each become U+FFFD.
func norm(s string) string { return string([]rune(s)) }

// FuzzEncodeDecode encodes a flow with arbitrary strings and numbers: the file must be valid JSON that
// bayseflow.Decode and encoding/json accept, and the strings and numbers must read back (R-OUT-1,
// R-OUT-5, R-OUT-6, R-NUM-1, R-NUM-2). Non-finite times are outside JSON and are replaced by 0 here.
func FuzzEncodeDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, src, srcPort, dst, dstPort, name, id, source, fileName, hash string,
		proto uint8, sp, sb, dp, db int64, rel, dur, start float64) {
		finite := func(x float64) float64 {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return 0
			}
			return x
		}
		rel, dur, start = finite(rel), finite(dur), finite(start)
		fl := flow.Flow{SrcAddr: src, SrcPort: srcPort, DstAddr: dst, DstPort: dstPort, Name: name, Identifier: id,
			NameSource: flow.NameSource(source), Protocol: protos[int(proto)%len(protos)],
			SrcPkts: sp, SrcBytes: sb, DstPkts: dp, DstBytes: db, RelativeStart: rel, Duration: dur}
		withinLimit(t, func() {
			data := Encode(flow.Sample{Start: start, Flows: []flow.Flow{fl, fl}}, fileName, hash)
			if !json.Valid(data) {
				t.Fatalf("invalid JSON: %q", data)
			}
			for _, c := range data {
				if c >= 0x80 {
					t.Fatalf("non-ASCII byte in %q", data)
				}
			}
			var generic map[string]any
			if err := json.Unmarshal(data, &generic); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			file, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			wantHash := norm(hash)
			if hash == "" {
				wantHash = file.Hash // a fresh one
			}
			if file.Hash != wantHash || file.FileName != norm(fileName) || file.TrafficDate != pynum.Repr(start) || len(file.Flows) != 2 {
				t.Fatalf("header: %q %q %q, %d flows", file.Hash, file.FileName, file.TrafficDate, len(file.Flows))
			}
			r := file.Flows[1]
			// The address stands in for the name only in a flow never named (no name source).
			shown := name
			if name == "" && source == "" {
				shown = dst
			}
			wantSrc, wantDst := src+":"+srcPort, shown+":"+dstPort
			if fl.Protocol == flow.ProtoICMP {
				wantSrc, wantDst = src, shown
			}
			wantSource := source
			if source == "" {
				wantSource = string(flow.SourceOriginal)
			}
			if r.Src != norm(wantSrc) || r.Dst != norm(wantDst) || r.Identifier != norm(id) ||
				r.DestinationNameSource != norm(wantSource) || r.ProtocolInformation != string(fl.Protocol) {
				t.Fatalf("strings: %+v", r)
			}
			for _, c := range []struct {
				got  json.Number
				want int64
			}{{r.SrcPkts, sp}, {r.SrcBytes, sb}, {r.DstPkts, dp}, {r.DstBytes, db}} {
				if c.got.String() != strconv.FormatInt(c.want, 10) {
					t.Fatalf("integer %s, want %d", c.got, c.want)
				}
			}
			for _, c := range []struct {
				got  json.Number
				want float64
			}{{r.RelativeStart, rel}, {r.Duration, dur}} {
				v, err := strconv.ParseFloat(c.got.String(), 64)
				if err != nil || v != c.want || c.got.String() != pynum.Repr(c.want) {
					t.Fatalf("number %s, want %v (%v)", c.got, c.want, err)
				}
			}
		})
	})
}

// TestFuzzSeeds writes the seed corpus with -update; without it, checks that it exists.
func TestFuzzSeeds(t *testing.T) {
	seeds := map[string]fuzzArgs{
		"tcp": {src: "192.168.86.245", srcPort: "63694", dst: "104.19.240.93", dstPort: "443", name: "contextualizedsecurity.com",
			id: "0", source: "passive", fileName: "x_filtered.bf", hash: "3190e928f0fd42a38c208eb8ff181a09", proto: 0,
			sp: 3, sb: -10, dp: 0, db: 0, rel: 0.169868, dur: 8.1e-05, start: 1617652286.24605},
		"icmp-v6": {src: "2001:470:1:18::3:1280", dst: "2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6", proto: 2, sp: 1, sb: 1236,
			rel: 20678.084, start: 99999999999.0},
		"unicode": {src: "10.0.0.1", srcPort: "5", dst: "10.0.0.2", dstPort: "53", name: "na\u00efve\U0001F600\u2028\x7f\x01\"\\/\t\n",
			id: "Cf5EIoohI0s0bcs6d", source: "session", fileName: "caf\u00e9.bf", proto: 3, sp: math.MaxInt64, db: math.MinInt64,
			rel: 1e16, dur: 1e-300, start: math.Copysign(0, -1)},
		"invalid-utf8": {src: "\xff\xfe", srcPort: "\xed\xa0\x80", name: "a\xc3", fileName: "\x80", hash: "\x00", proto: 1, rel: 5e-324},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzEncodeDecode")
	for n, a := range seeds {
		path := filepath.Join(dir, "seed-"+n)
		if !*update {
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed %s missing (run go test -run TestFuzzSeeds -update): %v", path, err)
			}
			continue
		}
		text := "go test fuzz v1\n"
		for _, s := range []string{a.src, a.srcPort, a.dst, a.dstPort, a.name, a.id, a.source, a.fileName, a.hash} {
			text += "string(" + strconv.Quote(s) + ")\n"
		}
		text += fmt.Sprintf("byte(%d)\n", a.proto)
		for _, v := range []int64{a.sp, a.sb, a.dp, a.db} {
			text += fmt.Sprintf("int64(%d)\n", v)
		}
		for _, v := range []float64{a.rel, a.dur, a.start} {
			text += "float64(" + strconv.FormatFloat(v, 'g', -1, 64) + ")\n"
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
