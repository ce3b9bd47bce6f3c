package zeek

import (
	"testing"
)

// R-ZEEK-3: "any other JSON value (number, string, …) makes the reference drop *all* records of the file
// (the output is then empty, R-OUT-9)". The reference stops reading at that line (it returns), so a later
// blank line — which alone would abort — is never read: the result is an empty sample, not an error.
func TestRZEEK3OtherValueStopsReading(t *testing.T) {
	rec := `{"ts":1.0,"uid":"C1","id.orig_h":"192.168.1.2","id.orig_p":5,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp"}`
	s, _, err := read(t, rec+"\n\"x\"\n\n", "")
	if err != nil {
		t.Fatalf("Read: %v, want an empty sample", err)
	}
	if len(s.Flows) != 0 {
		t.Errorf("flows %+v, want none", s.Flows)
	}
}

// R-ZEEK-9: "srcPkts/dstPkts are sums of orig_pkts/resp_pkts (… non-integer text aborts)". "1__0" is not a
// decimal integer (Python's int() refuses it).
func TestRZEEK9PacketsNotInteger(t *testing.T) {
	_, _, err := read(t, tsv(conn{opk: "1__0", rpk: "1"}), "")
	if err == nil {
		t.Errorf("orig_pkts \"1__0\" accepted, want an abort")
	}
}

// R-ZEEK-8: "int(x) if integer" means "leave the accumulator unchanged when x is not a decimal integer".
func TestRZEEK8BytesNotInteger(t *testing.T) {
	s, _ := mustRead(t, tsv(conn{service: "dns", ob: "_5", rb: "7_", opk: "1", rpk: "1"}), "")
	if got := countsOf(s.Flows[0]); got.sb != 0 || got.db != 0 {
		t.Errorf("bytes %+v, want 0/0 (\"_5\" and \"7_\" are not integers)", got)
	}
}

// R-ZEEK-6: "obj.last = max(obj.last, ts + dec(duration))", dec = "the double nearest to the decimal text
// (what Go's strconv.ParseFloat(text, 64) gives)" — +Inf for "1e400" (Python's float() agrees). Nothing
// aborts; the duration is +Inf.
func TestRZEEK6DurationOverflow(t *testing.T) {
	s, _, err := read(t, tsv(conn{dur: "1e400", opk: "1", rpk: "1"}), "")
	if err != nil {
		t.Fatalf("Read: %v, want a flow with an infinite duration", err)
	}
	if d := s.Flows[0].Duration; d <= 1e308 {
		t.Errorf("duration %v, want +Inf", d)
	}
}

// Section 0 (py-text): "when the reference turns a JSON value into text it uses Python's str" — str of a
// list is "['C1', 'C2']"; the identifier is the uid's py-text (R-NUM-3, R-ZEEK-9).
func TestPyTextContainer(t *testing.T) {
	rec := `{"ts":1.0,"uid":["C1","it's",2,true,null,1.5,{"a":[],"b":1}],"id.orig_h":"192.168.1.2","id.orig_p":5,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp"}`
	s, _ := mustRead(t, rec+"\n", "")
	want := `['C1', "it's", 2, True, None, 1.5, {'a': [], 'b': 1}]`
	if got := s.Flows[0].Identifier; got != want {
		t.Errorf("identifier %q, want %q", got, want)
	}
}
