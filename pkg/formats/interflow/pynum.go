package interflow

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/flowfleet/flowfleet/pkg/internal/pynum"
	"github.com/flowfleet/flowfleet/pkg/internal/pytext"
)

// pyNum is a Python number made from a JSON value: an int (JSON integers and booleans) or a float.
type pyNum struct {
	isInt bool
	i     *big.Int
	f     float64
}

var (
	errOverflow = errors.New("overflow") // Python's OverflowError
	errValue    = errors.New("value")    // Python's ValueError
)

// asNum converts a JSON value to a Python number; strings, null and containers are not numbers (Python
// raises TypeError when the reference does arithmetic on them).
func asNum(v *jval) (pyNum, error) {
	switch v.k {
	case kBool:
		if v.b {
			return pyNum{isInt: true, i: big.NewInt(1)}, nil
		}
		return pyNum{isInt: true, i: big.NewInt(0)}, nil
	case kNum:
		if !strings.ContainsAny(v.s, ".eE") {
			i, ok := new(big.Int).SetString(v.s, 10)
			if !ok {
				return pyNum{}, errType
			}
			return pyNum{isInt: true, i: i}, nil
		}
		return pyNum{f: literalFloat(v.s)}, nil
	}
	return pyNum{}, errType
}

// literalFloat is Python's json float of a literal: overflow gives ±Inf, no error.
func literalFloat(lit string) float64 {
	f, _ := strconv.ParseFloat(lit, 64)
	return f
}

// float converts a number to a double as Python does in mixed arithmetic (OverflowError for an int too
// large for a double).
func (n pyNum) float() (float64, error) {
	if !n.isInt {
		return n.f, nil
	}
	f, _ := new(big.Float).SetInt(n.i).Float64()
	if math.IsInf(f, 0) {
		return 0, errOverflow
	}
	return f, nil
}

// text is str() of the number.
func (n pyNum) text() string {
	if n.isInt {
		return n.i.String()
	}
	return pynum.Repr(n.f)
}

// sub is Python's a - b.
func sub(a, b pyNum) (pyNum, error) {
	if a.isInt && b.isInt {
		return pyNum{isInt: true, i: new(big.Int).Sub(a.i, b.i)}, nil
	}
	x, err := a.float()
	if err != nil {
		return pyNum{}, err
	}
	y, err := b.float()
	if err != nil {
		return pyNum{}, err
	}
	return pyNum{f: x - y}, nil
}

// mss is the reference's maximum segment size for guessing packet counts (R-IF-3).
const mss = 1514

// ceilPackets is Python's math.ceil(n / 1514): true division (correctly rounded, also for huge ints), then
// the ceiling as an int. Infinite results raise OverflowError and NaN ValueError.
func ceilPackets(n pyNum) (pyNum, error) {
	var q float64
	if n.isInt {
		q, _ = new(big.Rat).SetFrac(n.i, big.NewInt(mss)).Float64()
	} else {
		q = n.f / mss
	}
	switch {
	case math.IsNaN(q):
		return pyNum{}, errValue
	case math.IsInf(q, 0):
		return pyNum{}, errOverflow
	}
	i, _ := big.NewFloat(math.Ceil(q)).Int(nil)
	return pyNum{isInt: true, i: i}, nil
}

// isZero is Python's `v == 0` for a JSON value.
func isZero(v *jval) bool {
	n, err := asNum(v)
	if err != nil {
		return false
	}
	if n.isInt {
		return n.i.Sign() == 0
	}
	return n.f == 0
}

// floatOf is Python's float(v) for a JSON value: booleans and numbers convert (an int too large raises
// OverflowError), strings are parsed, anything else raises TypeError.
func floatOf(v *jval) (float64, error) {
	switch v.k {
	case kStr:
		f, ok := pytext.Float(v.s)
		if !ok {
			return 0, errValue
		}
		return f, nil
	case kBool, kNum:
		n, err := asNum(v)
		if err != nil {
			return 0, err
		}
		return n.float()
	}
	return 0, errType
}
