package netflow

import (
	"regexp"
	"strconv"
	"time"
)

// startPattern is the regular expression Python's _strptime builds for "%Y-%m-%d %H:%M:%S" (the space
// becomes \s+, which matches any Python whitespace). Python's \d also matches non-ASCII decimal digits;
// only ASCII digits are accepted here. Go's leftmost-first alternation picks the same groups as Python's
// backtracking matcher, and every alternative list is ordered longest first, so anchoring at the end is
// the same as Python's "unconverted data remains" check.
var startPattern = regexp.MustCompile(`^([0-9]{4})-(1[0-2]|0[1-9]|[1-9])-(3[01]|[12][0-9]|0[1-9]|[1-9]| [1-9])` +
	`[\t\n\v\f\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+` +
	`(2[0-3]|[0-1][0-9]|[0-9]):([0-5][0-9]|[0-9]):(6[0-1]|[0-5][0-9]|[0-9])$`)

// parseStart converts a record's start text to epoch seconds as the reference does with
// datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp() (R-NF-5): a naive local time in loc. ok is
// false where Python raises (no match, fractional seconds, year 0, day beyond the month, second 60 or 61).
func parseStart(s string, loc *time.Location) (float64, bool) {
	m := startPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n := func(i int) int {
		v, _ := strconv.Atoi(trimSpace1(m[i]))
		return v
	}
	year, month, day := n(1), n(2), n(3)
	hour, minute, second := n(4), n(5), n(6)
	if year < 1 || day > daysIn(year, month) || second > 59 {
		return 0, false // datetime() raises ValueError
	}
	u, ok := localToSeconds(year, month, day, hour, minute, second, loc)
	return float64(u), ok
}

// trimSpace1 drops the leading space that the " [1-9]" day alternative allows.
func trimSpace1(s string) string {
	if s != "" && s[0] == ' ' {
		return s[1:]
	}
	return s
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// maxFoldSeconds is CPython's max_fold_seconds: the widest span searched for another UTC offset.
const maxFoldSeconds = 24 * 3600

// localToSeconds is CPython's local_to_seconds (Modules/_datetimemodule.c) with fold = 0, which is what
// datetime.timestamp() uses for a naive datetime: it solves wall = local(u) for u, where local(u) is the
// wall clock (as if UTC) at instant u in loc.
//   - an ambiguous wall time (a clock set back) gets the earlier instant, i.e. the offset in force before
//     the change (for America/New_York in November: EDT);
//   - a nonexistent wall time (a clock set forward) is read with the offset in force before the gap and so
//     lands after it: 2022-03-13 02:30 in America/New_York gives 07:30 UTC (03:30 EDT).
//
// Like CPython, it fails (ok false) when a wall clock it computes falls outside years 1…9999 ("year 0 is
// out of range" for 0001-01-01 in a zone west of UTC).
func localToSeconds(year, month, day, hour, minute, second int, loc *time.Location) (u int64, ok bool) {
	t := time.Date(year, time.Month(month), day, hour, minute, second, 0, time.UTC).Unix()
	ok = true
	local := func(u int64) int64 {
		lt := time.Unix(u, 0).In(loc)
		if y := lt.Year(); y < 1 || y > 9999 {
			ok = false
		}
		_, off := lt.Zone()
		return u + int64(off)
	}
	u = solveLocal(t, local)
	return u, ok
}

// solveLocal is the body of CPython's local_to_seconds for fold = 0.
func solveLocal(t int64, local func(int64) int64) int64 {
	a := local(t) - t
	u1 := t - a
	t1 := local(u1)
	var b int64
	if t1 == t {
		u2 := u1 - maxFoldSeconds // fold = 0: look for an earlier solution
		b = local(u2) - u2
		if a == b {
			return u1
		}
	} else {
		b = t1 - u1
	}
	u2 := t - b
	if local(u2) == t {
		return u2
	}
	if t1 == t {
		return u1
	}
	// t is in a gap: neither offset solves it; fold = 0 takes the later of the two candidates.
	return max(u1, u2)
}
