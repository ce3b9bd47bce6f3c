package pytext

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
)

// Package pytext reproduces the Python conversions the reference applies to text it reads from logs —
// str.strip, int() and float() — and reads lines as Python's universal newlines do. Only ASCII digits
// are recognised (Python also accepts other Unicode decimal digits).

// IsSpace reports whether Python's str.isspace() is true for r.
func IsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// Strip is Python's str.strip() without arguments.
func Strip(s string) string { return strings.TrimFunc(s, IsSpace) }

// MaxIntDigits is CPython's limit on the digits of an int parsed from text (3.11: 4300).
const MaxIntDigits = 4300

// pyInt parses s as Python's int(s) does (surrounding whitespace, a sign, digits with single underscores
// between them). ok is false where Python raises ValueError.
func Int(s string) (v *big.Int, ok bool) {
	s = Strip(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	digits, ok := Digits(s)
	if !ok || len(digits) > MaxIntDigits {
		return nil, false
	}
	v, ok = new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, false
	}
	if neg {
		v.Neg(v)
	}
	return v, true
}

// pyDigits validates a run of ASCII digits with optional single underscores between digits (PEP 515) and
// returns the digits alone.
func Digits(s string) (string, bool) {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
		return "", false
	}
	if !strings.Contains(s, "_") {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return "", false
			}
		}
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '_' && s[i-1] != '_':
		default:
			return "", false
		}
	}
	return b.String(), true
}

// pyFloat parses s as Python's float(s) does: surrounding whitespace, a sign, inf/infinity/nan in any
// case, or a decimal literal whose digit runs may contain single underscores. Overflow gives ±Inf (as
// in Python). ok is false where Python raises ValueError.
func Float(s string) (float64, bool) {
	s = Strip(s)
	body := s
	if body != "" && (body[0] == '+' || body[0] == '-') {
		body = body[1:]
	}
	switch strings.ToLower(body) {
	case "inf", "infinity":
		if s[0] == '-' {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case "nan":
		return math.NaN(), true
	}
	var clean strings.Builder
	clean.WriteString(s[:len(s)-len(body)])
	i := 0
	run := func() (string, bool) {
		j := i
		for j < len(body) && (body[j] >= '0' && body[j] <= '9' || body[j] == '_') {
			j++
		}
		if j == i {
			return "", true
		}
		d, ok := Digits(body[i:j])
		i = j
		return d, ok
	}
	intPart, ok := run()
	if !ok {
		return 0, false
	}
	clean.WriteString(intPart)
	frac := ""
	if i < len(body) && body[i] == '.' {
		i++
		if frac, ok = run(); !ok {
			return 0, false
		}
		clean.WriteByte('.')
		clean.WriteString(frac)
	}
	if intPart == "" && frac == "" {
		return 0, false
	}
	if i < len(body) && (body[i] == 'e' || body[i] == 'E') {
		i++
		clean.WriteByte('e')
		if i < len(body) && (body[i] == '+' || body[i] == '-') {
			clean.WriteByte(body[i])
			i++
		}
		exp, ok := run()
		if !ok || exp == "" {
			return 0, false
		}
		clean.WriteString(exp)
	}
	if i != len(body) {
		return 0, false
	}
	v, err := strconv.ParseFloat(clean.String(), 64)
	if err != nil && !IsRange(err) {
		return 0, false
	}
	return v, true
}

// IsRange reports a strconv range error.
func IsRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}
