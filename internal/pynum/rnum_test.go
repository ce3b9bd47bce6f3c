package pynum

import (
	"math"
	"strconv"
	"testing"
)

// R-NUM-2: relativeStart and duration are repr(fix6(x)): at most six decimals, trailing zeros dropped,
// at least one decimal, scientific below 1e-4. The differences are computed from frame times as the
// engine does (R-PCAP-2 times, plain double subtraction).
func TestRNUM2(t *testing.T) {
	cases := []struct {
		a, b float64 // x = a − b
		want string
	}{
		{MicroTime(1617652286, 320474), MicroTime(1617652286, 246050), "0.074424"},
		{MicroTime(1617652286, 415918), MicroTime(1617652286, 246050), "0.169868"},
		{MicroTime(1617652286, 246131), MicroTime(1617652286, 246050), "8.1e-05"},
		{MicroTime(1617652286, 246060), MicroTime(1617652286, 246050), "1e-05"},
		{MicroTime(1617652286, 246150), MicroTime(1617652286, 246050), "0.0001"},
		{MicroTime(1617652286, 246050), MicroTime(1617652286, 246050), "0.0"},
		{MicroTime(1617652287, 246050), MicroTime(1617652286, 246050), "1.0"},
		{1656537951.826, 1656517273.742, "20678.084"},
		{MicroTime(1214049966, 587000) + 48.68848, MicroTime(1214049966, 587000), "48.68848"},
	}
	for _, c := range cases {
		if got := Repr(Fix6(c.a - c.b)); got != c.want {
			t.Errorf("repr(fix6(%v − %v)) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

// R-CONV-2: fix6 rounds the exact binary value, ties to even; repr's layout rules.
func TestRCONV2Fix6AndRepr(t *testing.T) {
	if got := Fix6(0.0000005); got != 0 { // 5e-7 is slightly below the tie in binary → 0.000000
		t.Errorf("Fix6(5e-7) = %v", got)
	}
	if got := Fix6(2.5e-06); got != 3e-06 { // 2.5e-6 is slightly above the tie in binary (CPython: 0.000003)
		t.Errorf("Fix6(2.5e-6) = %v", got)
	}
	// Whatever the path, Fix6 equals formatting with six decimals and parsing back.
	for _, x := range []float64{1e-7, 0.1234565, 123456.0000005, -3.0000005, 1e15 + 0.3, 9e9 + 0.0000005, math.MaxFloat64} {
		want, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 6, 64), 64)
		if got := Fix6(x); got != want {
			t.Errorf("Fix6(%v) = %v, want %v", x, got, want)
		}
	}
	for x, want := range map[float64]string{
		1e-4: "0.0001", 9.99e-5: "9.99e-05", 1e15: "1000000000000000.0", 1.5e16: "1.5e+16",
		-1e-7: "-1e-07", 1e22: "1e+22", 1e-300: "1e-300", 123.456: "123.456",
	} {
		if got := Repr(x); got != want {
			t.Errorf("Repr(%v) = %q, want %q", x, got, want)
		}
	}
}

// py-text (docs/bayseflow.md#py-text): integers keep their digits, other numbers are repr of the nearest double.
// Note: CPython 3.9–3.11 gives repr(float("0.055490970611572269")) == "0.055490970611572266" (the shortest
// text that reads back as the same double); "0.05549097061157227", an example some write-ups of the rule
// give, does not read back as that double.
func TestPyText(t *testing.T) {
	for lit, want := range map[string]string{
		"443": "443", "-0": "0", // Python int has no negative zero "443.0": "443.0", "1e2": "100.0", "1E-5": "1e-05", "0.1": "0.1",
		"0.055490970611572269": "0.055490970611572266", "1e400": "inf", "-1e400": "-inf", "12345678901234567890": "12345678901234567890",
	} {
		if got := NumberText(lit); got != want {
			t.Errorf("NumberText(%s) = %q, want %q", lit, got, want)
		}
	}
}
