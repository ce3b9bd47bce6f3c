package pynum

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// R-CONV-2 (docs/bayseflow.md#R-CONV-2): repr, on the rule's examples and a few more.
func TestRepr(t *testing.T) {
	cases := map[float64]string{
		0:                  "0.0",
		1:                  "1.0",
		48.689:             "48.689",
		1617652286.24605:   "1617652286.24605",
		99999999999.0:      "99999999999.0",
		8.1e-05:            "8.1e-05",
		1e16:               "1e+16",
		0.0001:             "0.0001",
		123456789012345678: "1.2345678901234568e+17",
		-2.5:               "-2.5",
		1e-10:              "1e-10",
		20678.084:          "20678.084",
		1234567890123456:   "1234567890123456.0",
	}
	for in, want := range cases {
		if got := Repr(in); got != want {
			t.Errorf("Repr(%v) = %q, want %q", in, got, want)
		}
	}
	if got := Repr(math.Copysign(0, -1)); got != "-0.0" {
		t.Errorf("Repr(-0) = %q", got)
	}
}

// R-CONV-2: fix6 rounds the exact binary value to six decimals.
func TestFix6(t *testing.T) {
	if got := Fix6(1617652286.320474 - 1617652286.246050); Repr(got) != "0.074424" {
		t.Errorf("Fix6 = %s", Repr(got))
	}
	if got := Fix6(0.0000814); Repr(got) != "8.1e-05" {
		t.Errorf("Fix6 = %s", Repr(got))
	}
}

// R-PCAP-2: frame times are dec("<sec>.<usec>").
func TestMicroTime(t *testing.T) {
	for _, c := range []struct {
		sec  uint64
		usec uint32
	}{{1617652286, 246050}, {1617652276, 543011}, {0, 1}, {4294967295, 999999}, {1 << 40, 5}} {
		want, _ := Dec(formatMicro(c.sec, c.usec))
		if got := MicroTime(c.sec, c.usec); got != want {
			t.Errorf("MicroTime(%d,%d) = %v want %v", c.sec, c.usec, got, want)
		}
	}
}

func formatMicro(sec uint64, usec uint32) string {
	return json.Number(func() string {
		s := ""
		for v := sec; ; v /= 10 {
			s = string(rune('0'+v%10)) + s
			if v < 10 {
				break
			}
		}
		return s + "." + pad6(usec)
	}()).String()
}

func TestText(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{json.Number("443"), "443"},
		{json.Number("-0"), "0"},
		{json.Number("-12"), "-12"},
		{json.Number("443.0"), "443.0"},
		{json.Number("1e2"), "100.0"},
		{json.Number("0.055490970611572269"), "0.055490970611572266"}, // CPython 3.11 repr
		{true, "True"}, {false, "False"}, {nil, "None"}, {"x", "x"},
	}
	for _, c := range cases {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%v) = %q want %q", c.in, got, c.want)
		}
	}
}

// Fix6's arithmetic fast path must agree with formatting and parsing text on every value.
func TestFix6MatchesText(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(x float64) {
		if got, want := Fix6(x), fix6Text(x); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("Fix6(%v) = %v, text gives %v", x, got, want)
		}
	}
	for i := 0; i < 2_000_000; i++ {
		switch i % 4 {
		case 0:
			check(rng.Float64() * 1e4)
		case 1:
			check(float64(rng.Int64N(2_000_000_000)) + rng.Float64())
		case 2: // differences of two capture times
			a := MicroTime(uint64(1.6e9+rng.Int64N(1e8)), uint32(rng.IntN(1e6)))
			b := MicroTime(uint64(1.6e9+rng.Int64N(1e8)), uint32(rng.IntN(1e6)))
			check(a - b)
		default: // exact ties at the seventh decimal
			check(float64(rng.Int64N(1e9)) / 1e7 * 5)
		}
	}
	for _, x := range []float64{0, math.Copysign(0, -1), -1e-9, 0.0000005, 0.0000015, 2.5e-7, 8999999999.9999995, 9e9, 1e12, math.Inf(1), math.NaN()} {
		check(x)
	}
}

// The positional fast path of AppendRepr writes what the general path writes, over the whole range
// it covers and its edges.
func TestAppendReprFastPathMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(x float64) {
		if got, want := string(AppendRepr(nil, x)), string(appendReprSci(nil, x)); got != want {
			t.Fatalf("%v: %q, want %q", x, got, want)
		}
	}
	for _, x := range []float64{1e9, math.Nextafter(1e9, 0), 999999999.999999, 0.0001, 0.000123, 1.5, 2,
		1e-4, math.Nextafter(1e-4, 0), math.Nextafter(1e-4, 1), 1e16,
		math.Nextafter(1e16, 0), 9999999999999998, 0.1, 1, 100, 1700000000.123456, 0.000123, 123456789012345.6} {
		check(x)
		check(-x)
	}
	for i := 0; i < 2_000_000; i++ {
		var x float64
		switch i % 4 {
		case 0: // relativeStart and duration: six decimals, both signs, across the 1e9 bound
			x = Fix6((rng.Float64()*2 - 1) * math.Pow(10, rng.Float64()*11-2))
		case 1: // any magnitude in range
			x = math.Pow(10, -4+rng.Float64()*20) * (rng.Float64() + 0.5)
		case 2: // integers
			x = float64(rng.Int64N(1 << 53))
		default: // arbitrary bits
			x = math.Float64frombits(rng.Uint64())
		}
		if !math.IsNaN(x) {
			check(x)
		}
	}
}
