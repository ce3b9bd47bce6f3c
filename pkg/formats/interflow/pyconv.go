package interflow

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
)

// The reference turns JSON values into Python text and numbers; these helpers reproduce Python's int()
// and float() on text. Only ASCII digits are recognised (Python also accepts other Unicode decimal digits
// in such text, e.g. a timestamp string written in Arabic-Indic digits; FlowFleet treats those as
// non-numeric).

// pyIsSpace reports whether Python's str.isspace() is true for r.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's str.strip() without arguments.
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// maxIntDigits is CPython's limit on the digits of an int parsed from text (3.11: 4300).
const maxIntDigits = 4300

// pyInt parses s as Python's int(s) does (surrounding whitespace, a sign, digits with single underscores
// between them). ok is false where Python raises ValueError.
func pyInt(s string) (v *big.Int, ok bool) {
	s = pyStrip(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	digits, ok := pyDigits(s)
	if !ok || len(digits) > maxIntDigits {
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
func pyDigits(s string) (string, bool) {
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
func pyFloat(s string) (float64, bool) {
	s = pyStrip(s)
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
		d, ok := pyDigits(body[i:j])
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
	if err != nil && !isRange(err) {
		return 0, false
	}
	return v, true
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}
