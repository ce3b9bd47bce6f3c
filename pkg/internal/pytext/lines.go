package pytext

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// LineReader splits its input into lines the way Python's text files do (universal newlines: "\n", "\r\n"
// and a lone "\r" all end a line; a last line without terminator still counts). Every byte is scanned
// once, and a line longer than max bytes is an error rather than an unbounded allocation.
type LineReader struct {
	r          io.Reader
	buf        []byte
	pos, end   int
	eof        bool
	skipLF     bool // the previous line ended with "\r": a following "\n" belongs to it
	line       []byte
	max        int
	num        int // 1-based number of the line last returned
	emptyReads int
}

// ErrLineTooLong reports a line longer than the reader's bound.
var ErrLineTooLong = errors.New("line too long")

// NewLineReader reads lines of at most max bytes from r.
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: r, buf: make([]byte, 64<<10), max: max}
}

// next returns the next line without its terminator; the slice is valid until the following call.
// It returns io.EOF after the last line.
func (lr *LineReader) Next() ([]byte, error) {
	lr.line = lr.line[:0]
	started := false
	for {
		if lr.pos == lr.end {
			if lr.eof {
				if started {
					lr.num++
					return lr.line, nil
				}
				return nil, io.EOF
			}
			n, err := lr.r.Read(lr.buf)
			lr.pos, lr.end = 0, n
			if err == io.EOF {
				lr.eof = true
			} else if err != nil {
				return nil, err
			}
			if n == 0 && !lr.eof {
				lr.emptyReads++
				if lr.emptyReads > 100 {
					return nil, io.ErrNoProgress
				}
			} else {
				lr.emptyReads = 0
			}
			continue
		}
		if lr.skipLF {
			lr.skipLF = false
			if lr.buf[lr.pos] == '\n' {
				lr.pos++
				continue
			}
		}
		win := lr.buf[lr.pos:lr.end]
		i := bytes.IndexAny(win, "\r\n")
		if i < 0 {
			if err := lr.add(win); err != nil {
				return nil, err
			}
			started = true
			lr.pos = lr.end
			continue
		}
		if err := lr.add(win[:i]); err != nil {
			return nil, err
		}
		lr.skipLF = win[i] == '\r'
		lr.pos += i + 1
		lr.num++
		return lr.line, nil
	}
}

func (lr *LineReader) add(b []byte) error {
	if len(lr.line)+len(b) > lr.max {
		lr.num++
		return fmt.Errorf("%w (more than %d bytes)", ErrLineTooLong, lr.max)
	}
	lr.line = append(lr.line, b...)
	return nil
}

// checkText reports why a line is not text: invalid UTF-8, a NUL byte or another control character that
// text files do not contain (libmagic's notion of text, roughly; R-IF-1, R-NF-1).
func CheckText(b []byte) error {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\f' && c != '\v' && c != '\b' && c != '\a' && c != 0x1b {
				return fmt.Errorf("binary content (byte 0x%02x)", c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return errors.New("invalid UTF-8 (not a text file)")
		}
		i += size
	}
	return nil
}

// Line returns the 1-based number of the line last returned by Next.
func (lr *LineReader) Line() int { return lr.num }
