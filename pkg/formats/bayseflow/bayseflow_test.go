package bayseflow

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// sample is a finished sample touching every part of the layout: negative bytes, an ICMP flow without
// ports, a "" protocol, scientific notation, and a name with non-ASCII, astral, control and JSON
// special characters.
func sample() flow.Sample {
	return flow.Sample{Start: 1617652286.24605, Flows: []flow.Flow{
		{SrcAddr: "192.168.86.245", SrcPort: "63694", DstAddr: "104.19.240.93", DstPort: "443", Protocol: flow.ProtoTCP,
			Identifier: "0", SrcPkts: 3, SrcBytes: -10, Name: "contextualizedsecurity.com", NameSource: flow.SourcePassive,
			RelativeStart: 0.169868, Duration: 8.1e-05},
		{SrcAddr: "2001:470:1:18::3:1280", DstAddr: "2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6", Protocol: flow.ProtoICMP,
			SrcPkts: 1, SrcBytes: 1236, RelativeStart: 20678.084, Duration: 0},
		{SrcAddr: "10.0.0.1", SrcPort: "5", DstAddr: "10.0.0.2", DstPort: "53", Protocol: flow.ProtoOther,
			Identifier: "Cf5EIoohI0s0bcs6d", SrcPkts: 1, DstPkts: 1, DstBytes: 40,
			Name: "na\u00efve\U0001F600\u2028\x7f\x01\"\\/\t\n", NameSource: flow.SourceSession,
			RelativeStart: 1, Duration: 48.68848},
	}}
}

// R-OUT-1, R-OUT-5, R-OUT-6, R-NUM-1, R-NUM-2, R-NUM-3: the exact bytes Python's json.dumps writes (this
// expected text was produced by CPython's json.dumps on the same values): ", " and ": " separators, one
// line, no final newline, \uXXXX for non-ASCII with surrogate pairs, DEL and control characters escaped,
// '/' not escaped.
func TestROUT1ExactBytes(t *testing.T) {
	want := `{"hash": "3190e928f0fd42a38c208eb8ff181a09", "trafficDate": "1617652286.24605", "fileName": "caf\u00e9 \ud83d\ude00/x_filtered.bf", "BayseFlows": [{"src": "192.168.86.245:63694", "dst": "contextualizedsecurity.com:443", "destinationNameSource": "passive", "srcPkts": 3, "srcBytes": -10, "dstPkts": 0, "dstBytes": 0, "relativeStart": 0.169868, "protocolInformation": "TCP", "identifier": "0", "duration": 8.1e-05}, {"src": "2001:470:1:18::3:1280", "dst": "2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6", "destinationNameSource": "original", "srcPkts": 1, "srcBytes": 1236, "dstPkts": 0, "dstBytes": 0, "relativeStart": 20678.084, "protocolInformation": "ICMP", "identifier": "", "duration": 0.0}, {"src": "10.0.0.1:5", "dst": "na\u00efve\ud83d\ude00\u2028\u007f\u0001\"\\/\t\n:53", "destinationNameSource": "session", "srcPkts": 1, "srcBytes": 0, "dstPkts": 1, "dstBytes": 40, "relativeStart": 1.0, "protocolInformation": "", "identifier": "Cf5EIoohI0s0bcs6d", "duration": 48.68848}]}`
	got := Encode(sample(), "caf\u00e9 \U0001F600/x_filtered.bf", "3190e928f0fd42a38c208eb8ff181a09")
	if string(got) != want {
		t.Errorf("Encode\n got  %s\n want %s", got, want)
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Errorf("first difference at byte %d: %q vs %q", i, got[max(0, i-20):min(len(got), i+20)], want[max(0, i-20):min(len(want), i+20)])
				break
			}
		}
	}
	var buf bytes.Buffer
	if err := EncodeTo(&buf, sample(), "caf\u00e9 \U0001F600/x_filtered.bf", "3190e928f0fd42a38c208eb8ff181a09"); err != nil || buf.String() != want {
		t.Errorf("EncodeTo differs from Encode: %v", err)
	}
}

// R-OUT-9, R-OUT-3: no flows → an empty array and the default date.
func TestROUT9Empty(t *testing.T) {
	got := string(Encode(flow.Sample{Start: flow.NoStart}, "testCase11_emptySansHeaders.conn.bf", "h"))
	want := `{"hash": "h", "trafficDate": "99999999999.0", "fileName": "testCase11_emptySansHeaders.conn.bf", "BayseFlows": []}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// R-OUT-2: a random version-4 UUID without dashes.
func TestROUT2Hash(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	a, b := NewHash(), NewHash()
	if !re.MatchString(a) || !re.MatchString(b) || a == b {
		t.Errorf("hashes %q %q", a, b)
	}
	f, err := Decode(Encode(flow.Sample{Start: 1}, "x.bf", ""))
	if err != nil || !re.MatchString(f.Hash) {
		t.Errorf("generated hash %q, %v", f.Hash, err)
	}
}

// R-OUT-4: output names.
func TestROUT4Names(t *testing.T) {
	capture := map[string]string{
		"testCase1_chromeWin10StartChromeBrowser.pcapng": "testCase1_chromeWin10StartChromeBrowser_filtered.bf",
		"testCase32_gre_encapsulation.cap":               "testCase32_gre_encapsulation_filtered.bf",
		"trace":                                          "trace_filtered.bf",
		"/data/v1.2/trace":                               "trace_filtered.bf", // the quirk of the dotted directory is not copied
		"dir/a.b.pcap":                                   "a.b_filtered.bf",
		".hidden":                                        "_filtered.bf",
	}
	for in, want := range capture {
		if got := CaptureFileName(in); got != want {
			t.Errorf("CaptureFileName(%q) = %q, want %q", in, got, want)
		}
	}
	logs := map[string]string{
		"testCase7_chromeWin10StartChromeBrowser.conn.log": "testCase7_chromeWin10StartChromeBrowser.conn.bf",
		"testCase22_oneInterflowPlusDNS.if":                "testCase22_oneInterflowPlusDNS.bf",
		"testCase34_ipv6_and_icmpv6_csv.netflow":           "testCase34_ipv6_and_icmpv6_csv.bf",
		"/logs/v2.0/conn":                                  "conn.bf",
	}
	for in, want := range logs {
		if got := LogFileName(in); got != want {
			t.Errorf("LogFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// R-NUM-2: relativeStart and duration are repr of fix6'd values; R-NF-8's unknown duration is the
// integer -1.
func TestRNUM2Numbers(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0.0"}, {1, "1.0"}, {8.1e-05, "8.1e-05"}, {0.0001, "0.0001"}, {48.68848, "48.68848"},
		{20678.084, "20678.084"}, {0.074424, "0.074424"}, {1e-06, "1e-06"}, {3517.813041, "3517.813041"},
		{1e16, "1e+16"}, {-0.5, "-0.5"},
	}
	for _, c := range cases {
		f := flow.Flow{SrcAddr: "1.1.1.1", DstAddr: "2.2.2.2", Protocol: flow.ProtoICMP, RelativeStart: c.v, Duration: c.v}
		got := string(AppendFlow(nil, &f))
		if !strings.Contains(got, `"relativeStart": `+c.want+`,`) || !strings.HasSuffix(got, `"duration": `+c.want+`}`) {
			t.Errorf("%v: %s", c.v, got)
		}
	}
	f := flow.Flow{SrcAddr: "1.1.1.1", SrcPort: "1", DstAddr: "2.2.2.2", DstPort: "2", DurationUnknown: true, Duration: 5}
	if got := string(AppendFlow(nil, &f)); !strings.HasSuffix(got, `"duration": -1}`) {
		t.Errorf("unknown duration: %s", got)
	}
}

// R-OUT-5: a flow without a name is written with its destination address and source "original".
func TestROUT5Defaults(t *testing.T) {
	f := flow.Flow{SrcAddr: "1.1.1.1", SrcPort: "1", DstAddr: "2.2.2.2", DstPort: "2", Protocol: flow.ProtoUDP}
	got := string(AppendFlow(nil, &f))
	if !strings.Contains(got, `"dst": "2.2.2.2:2", "destinationNameSource": "original"`) {
		t.Errorf("got %s", got)
	}
}

// Decode reads back what Encode writes, numbers kept as written (R-HAR-3 compares JSON types).
func TestDecodeRoundTrip(t *testing.T) {
	data := Encode(sample(), "x_filtered.bf", "abc")
	f, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Hash != "abc" || f.TrafficDate != "1617652286.24605" || f.FileName != "x_filtered.bf" || len(f.Flows) != 3 {
		t.Fatalf("decoded %+v", f)
	}
	r := f.Flows[2]
	if r.Dst != "na\u00efve\U0001F600\u2028\x7f\x01\"\\/\t\n:53" || r.Duration.String() != "48.68848" || r.RelativeStart.String() != "1.0" || r.SrcBytes.String() != "0" {
		t.Errorf("row %+v", r)
	}
	if !json.Valid(data) {
		t.Error("not valid JSON")
	}
	if _, err := Decode([]byte(`{"hash": `)); err == nil {
		t.Error("Decode accepted a cut file")
	}
}

// R-NUM-2 edge: non-finite times (a Zeek ts or duration of "nan"/"inf" parses as a number in Python and
// in Go) are written as Python's json.dumps writes them: NaN, Infinity, -Infinity.
func TestRNUM2NonFinite(t *testing.T) {
	f := flow.Flow{SrcAddr: "1.1.1.1", DstAddr: "2.2.2.2", Protocol: flow.ProtoICMP, RelativeStart: math.NaN(), Duration: math.Inf(1)}
	got := string(AppendFlow(nil, &f))
	if !strings.Contains(got, `"relativeStart": NaN,`) || !strings.HasSuffix(got, `"duration": Infinity}`) {
		t.Errorf("got %s", got)
	}
	f.Duration = math.Inf(-1)
	if got := string(AppendFlow(nil, &f)); !strings.HasSuffix(got, `"duration": -Infinity}`) {
		t.Errorf("got %s", got)
	}
	// trafficDate is a string: repr, as the reference writes it.
	if got := string(Encode(flow.Sample{Start: math.Inf(1)}, "x.bf", "h")); !strings.Contains(got, `"trafficDate": "inf"`) {
		t.Errorf("got %s", got)
	}
}

// R-OUT-5, R-NAME-1: a flow named "" by a passive answer (filed under Q = "" after a non-ASCII question,
// R-DNS-7) is written with the empty name; a flow never named is written with its address.
func TestROUT5EmptyPassiveName(t *testing.T) {
	f := flow.Flow{SrcAddr: "192.168.1.2", SrcPort: "50000", DstAddr: "93.184.216.34", DstPort: "443", Protocol: flow.ProtoTCP,
		NameSource: flow.SourcePassive}
	if got := string(AppendFlow(nil, &f)); !strings.Contains(got, `"dst": ":443", "destinationNameSource": "passive"`) {
		t.Errorf("got %s", got)
	}
	f.NameSource = ""
	if got := string(AppendFlow(nil, &f)); !strings.Contains(got, `"dst": "93.184.216.34:443", "destinationNameSource": "original"`) {
		t.Errorf("got %s", got)
	}
}

// A sample large enough to be encoded in parallel chunks is written exactly as one flow after the
// other: chunk borders, separators and order included.
func TestEncodeLargeSampleInOrder(t *testing.T) {
	base := sample().Flows
	n := 5*encodeChunk + 123
	s := flow.Sample{Start: 1617652286.24605, Flows: make([]flow.Flow, n)}
	for i := range s.Flows {
		s.Flows[i] = base[i%len(base)]
		s.Flows[i].SrcPkts = int64(i)
	}
	want := []byte(`{"hash": "h", "trafficDate": "1617652286.24605", "fileName": "big.bf", "BayseFlows": [`)
	for i := range s.Flows {
		if i > 0 {
			want = append(want, ", "...)
		}
		want = AppendFlow(want, &s.Flows[i])
	}
	want = append(want, "]}"...)
	got := Encode(s, "big.bf", "h")
	if !bytes.Equal(got, want) {
		t.Fatalf("large sample: %d bytes, want %d", len(got), len(want))
	}
	var decoded struct{ BayseFlows []struct{ SrcPkts int64 } }
	if err := json.Unmarshal(got, &decoded); err != nil || len(decoded.BayseFlows) != n {
		t.Fatalf("not one JSON object of %d flows: %v", n, err)
	}
	for i, f := range decoded.BayseFlows {
		if f.SrcPkts != int64(i) {
			t.Fatalf("flow %d out of order (srcPkts %d)", i, f.SrcPkts)
		}
	}
}

// The printable-ASCII fast path of the string escaper writes what the general escaper writes.
func TestAppendEscapedFastPathMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	alphabet := []byte("a.:0-\"\\\x00\x1f\x7f\x80\xc3\xa9\xf0\x9f\x98\x80 ~/")
	for i := 0; i < 200000; i++ {
		b := make([]byte, rng.IntN(12))
		for j := range b {
			if rng.IntN(4) == 0 {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[j] = byte(' ' + rng.IntN(95))
			}
		}
		if got, want := string(appendEscaped([]byte("x"), string(b))), string(appendEscapedSlow([]byte("x"), string(b))); got != want {
			t.Fatalf("%q: %q, want %q", b, got, want)
		}
	}
}
