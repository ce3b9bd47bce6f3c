package pytext

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Lines end at "\n", "\r\n" or a lone "\r", as in Python's text files (universal newlines), also when a
// terminator is split across reads.
func TestLineReader(t *testing.T) {
	in := "a\r\nb\rc\n\nd\r\r\ne"
	want := []string{"a", "b", "c", "", "d", "", "e"}
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
		"half":     iotest.HalfReader(strings.NewReader(in)),
	} {
		lr := NewLineReader(r, 10)
		var got []string
		for {
			line, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, string(line))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") || lr.num != len(want) {
			t.Errorf("%s: lines %q (%d), want %q", name, got, lr.num, want)
		}
	}
	lr := NewLineReader(strings.NewReader("12345\n12345678901\n"), 10)
	if _, err := lr.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := lr.Next(); !errors.Is(err, ErrLineTooLong) || lr.num != 2 {
		t.Errorf("long line: %v at %d", err, lr.num)
	}
	lr = NewLineReader(iotest.ErrReader(errors.New("boom")), 10)
	if _, err := lr.Next(); err == nil || err.Error() != "boom" {
		t.Errorf("read error: %v", err)
	}
}
