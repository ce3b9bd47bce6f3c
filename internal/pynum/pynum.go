// Package pynum reproduces the number and text conventions of the reference converter, which is written in
// Python: the shortest round-trip repr of a double, the six-decimal rounding used for every time value,
// and the text Python's str gives to JSON values (docs/bayseflow.md#R-CONV-2 and #py-text).
//
// Every function here is pure and safe for concurrent use.
package pynum

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Dec returns the double nearest to the decimal text s (R-CONV-2 dec).
func Dec(s string) (float64, error) {
	return strconv.ParseFloat(s, 64)
}

// Fix6 formats x with exactly six decimals and reads the text back (R-CONV-2 fix6).
//
// For |x| < 2^53/10^6 it computes the same result without text: n = x×10^6 rounded half to even is found
// exactly from the rounded product p and its exact error (FMA), and n/10^6 is then correctly rounded
// by the division, which is what parsing the six-decimal text gives.
func Fix6(x float64) float64 {
	if a := math.Abs(x); a < 9e9 {
		p := x * 1e6
		e := math.FMA(x, 1e6, -p) // exact: x×10^6 = p + e
		n := math.RoundToEven(p)
		// |p-n| < 0.5 leaves the exact product on n's side; at p = n±0.5 the sign of e breaks the tie.
		switch r := p - n; {
		case r == 0.5 && e > 0:
			n++
		case r == -0.5 && e < 0:
			n--
		}
		return n / 1e6
	}
	return fix6Text(x)
}

func fix6Text(x float64) float64 {
	var buf [64]byte
	b := strconv.AppendFloat(buf[:0], x, 'f', 6, 64)
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return x // NaN and infinities round-trip to themselves
	}
	return v
}

// MicroTime returns dec("<sec>.<usec as 6 digits>") without formatting text: sec×10⁶+usec is exact below
// 2⁵³ and IEEE division is correctly rounded, so the quotient is the double nearest to the decimal text.
func MicroTime(sec uint64, usec uint32) float64 {
	const limit uint64 = 1 << 53
	if sec < (limit-1_000_000)/1_000_000 && usec < 1_000_000 {
		return float64(sec*1e6+uint64(usec)) / 1e6
	}
	v, _ := strconv.ParseFloat(strconv.FormatUint(sec, 10)+"."+pad6(usec), 64)
	return v
}

func pad6(u uint32) string {
	s := strconv.FormatUint(uint64(u), 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// Repr returns Python's repr of a double (R-CONV-2 repr).
func Repr(x float64) string {
	return string(AppendRepr(nil, x))
}

// AppendRepr appends Python's repr of x to dst.
func AppendRepr(dst []byte, x float64) []byte {
	if a := math.Abs(x); a >= 1e-4 && a < 1e16 {
		// Python writes these in positional notation: the shortest digits that read back as x (Go's
		// and Python's agree), with ".0" when they have no fraction.
		if m := math.Round(x * 1e6); a < 1e9 && m/1e6 == x {
			// x is the double nearest a number of millionths (as relativeStart and duration are,
			// R-FLOW-2): below 1e9 doubles are closer than 1e-6, so those digits are the shortest.
			return appendMillionths(dst, int64(m))
		}
		n := len(dst)
		dst = strconv.AppendFloat(dst, x, 'f', -1, 64)
		for _, c := range dst[n:] {
			if c == '.' {
				return dst
			}
		}
		return append(dst, ".0"...)
	}
	return appendReprSci(dst, x)
}

// appendMillionths appends m/10⁶ in positional notation without trailing zeros (but one).
func appendMillionths(dst []byte, m int64) []byte {
	if m < 0 {
		dst = append(dst, '-')
		m = -m
	}
	dst = strconv.AppendInt(dst, m/1e6, 10)
	dst = append(dst, '.')
	frac := m % 1e6
	if frac == 0 {
		return append(dst, '0')
	}
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 6
	for digits[end-1] == '0' {
		end--
	}
	return append(dst, digits[:end]...)
}

// appendReprSci is AppendRepr by way of the scientific form, for every x.
func appendReprSci(dst []byte, x float64) []byte {
	switch {
	case math.IsNaN(x):
		return append(dst, "nan"...)
	case math.IsInf(x, 1):
		return append(dst, "inf"...)
	case math.IsInf(x, -1):
		return append(dst, "-inf"...)
	case x == 0:
		if math.Signbit(x) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], x, 'e', -1, 64) // [-]d[.ddd]e±XX
	neg := e[0] == '-'
	if neg {
		e = e[1:]
		dst = append(dst, '-')
	}
	ePos := 0
	for i, c := range e {
		if c == 'e' {
			ePos = i
			break
		}
	}
	mant := e[:ePos]
	exp, _ := strconv.Atoi(string(e[ePos+1:]))
	var digits [24]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digits[nd] = byte(c)
			nd++
		}
	}
	ds := digits[:nd]
	if exp < -4 || exp >= 16 {
		dst = append(dst, ds[0])
		if nd > 1 {
			dst = append(dst, '.')
			dst = append(dst, ds[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	if exp < 0 {
		dst = append(dst, '0', '.')
		for i := 0; i < -exp-1; i++ {
			dst = append(dst, '0')
		}
		return append(dst, ds...)
	}
	// exp >= 0: exp+1 integer digits
	if nd <= exp+1 {
		dst = append(dst, ds...)
		for i := nd; i < exp+1; i++ {
			dst = append(dst, '0')
		}
		return append(dst, '.', '0')
	}
	dst = append(dst, ds[:exp+1]...)
	dst = append(dst, '.')
	return append(dst, ds[exp+1:]...)
}

// Text returns the text Python's str gives to a decoded JSON value (docs/bayseflow.md#py-text).
// Numbers must have been decoded with json.Decoder.UseNumber.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case json.Number:
		return NumberText(string(x))
	case float64:
		return Repr(x)
	case []any, map[string]any:
		var b strings.Builder
		writeRepr(&b, x)
		return b.String()
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// writeRepr writes Python's repr of a decoded JSON value (lists and dicts as Python prints them). Go's
// maps do not keep the members' order: a dict's keys are written sorted, where Python keeps the JSON
// order.
func writeRepr(b *strings.Builder, v any) {
	switch x := v.(type) {
	case string:
		WriteStrRepr(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			WriteStrRepr(b, k)
			b.WriteString(": ")
			writeRepr(b, x[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString(Text(x))
	}
}

// WriteStrRepr writes Python's repr of a str: single quotes unless the text has a single quote and no
// double quote; backslash escapes for the quote, backslash, \t \n \r, other control characters and
// non-printable characters.
func WriteStrRepr(b *strings.Builder, s string) {
	const hexd = "0123456789abcdef"
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hexd[r>>4])
			b.WriteByte(hexd[r&0xF])
		case r < utf8.RuneSelf || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			b.WriteString(`\x`)
			b.WriteByte(hexd[r>>4])
			b.WriteByte(hexd[r&0xF])
		case r <= 0xffff:
			b.WriteString(`\u`)
			for sh := 12; sh >= 0; sh -= 4 {
				b.WriteByte(hexd[r>>uint(sh)&0xF])
			}
		default:
			b.WriteString(`\U`)
			for sh := 28; sh >= 0; sh -= 4 {
				b.WriteByte(hexd[r>>uint(sh)&0xF])
			}
		}
	}
	b.WriteByte(quote)
}

// NumberText returns the py-text of a JSON number literal: integers keep their digits, every other
// literal is written as repr of the nearest double.
func NumberText(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if strings.Trim(lit, "-0") == "" && strings.HasPrefix(lit, "-") {
			return "0" // Python's int has no negative zero
		}
		return lit
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		// Out of range literals become inf in Python.
		if strings.HasPrefix(lit, "-") {
			return "-inf"
		}
		return "inf"
	}
	return Repr(f)
}
