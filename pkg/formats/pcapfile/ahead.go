package pcapfile

import (
	"io"
	"sync"
)

// aheadChunk is the size of the buffers a BatchReader reads into.
const aheadChunk = 1 << 20

// aheadSource reads ahead: a goroutine (fill) reads the file into a few buffers, and the reader takes
// records from them without a further copy (a record that straddles two buffers is joined in a small
// side buffer, spill).
type aheadBuf struct {
	b   []byte // filled part of a buffer
	err error  // io.EOF or a read error after b
}

type aheadSource struct {
	full chan aheadBuf
	free chan []byte
	done chan struct{}
	once sync.Once

	window        // bytes being consumed: a buffer, or spill while a frame straddles two buffers
	curBuf []byte // the buffer cur points into (nil while cur is spill), to give back when consumed
	err    error  // what ends the input after cur (and next)

	// retire keeps used buffers in retired instead of giving them back (see BatchReader).
	retire  bool
	retired [][]byte

	spill   []byte
	next    []byte // the buffer to continue with after spill, from offset nextOff
	nextOff int
	nextBuf []byte
}

func (s *aheadSource) fill(r io.Reader) {
	defer close(s.full)
	for {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-s.done:
			return
		}
		if buf == nil { // buffers are made when first needed: a small file needs one
			buf = make([]byte, aheadChunk)
		}
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case s.full <- aheadBuf{b: buf[:n], err: err}:
		case <-s.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (s *aheadSource) close() {
	s.once.Do(func() { close(s.done) })
}

func (s *aheadSource) Size() int { return aheadChunk }

// advance makes the next buffer current once cur is used up; false at the end of the input.
func (s *aheadSource) advance() bool {
	if s.next != nil { // leaving spill: continue in the buffer it borrowed from
		s.cur, s.pos, s.curBuf, s.scratch = s.next, s.nextOff, s.nextBuf, false
		s.next, s.nextBuf = nil, nil
		return true
	}
	if s.curBuf != nil {
		s.release(s.curBuf)
		s.curBuf = nil
	}
	if s.err != nil {
		return false
	}
	b, ok := <-s.full
	if !ok {
		s.err = io.EOF
		return false
	}
	s.cur, s.pos, s.curBuf, s.err, s.scratch = b.b, 0, b.b[:cap(b.b)], b.err, false
	return len(b.b) > 0 || s.err == nil
}

func (s *aheadSource) release(b []byte) {
	if s.retire {
		s.retired = append(s.retired, b[:cap(b)])
		return
	}
	select {
	case s.free <- b[:cap(b)]:
	default:
	}
}

func (s *aheadSource) Peek(n int) ([]byte, error) {
	if n == 0 {
		// fix: an empty record at the very end of the file came back truncated: looking for its zero
		// bytes ran into the end of the input.
		return nil, nil
	}
	for s.pos >= len(s.cur) {
		if !s.advance() {
			return nil, s.endErr(0)
		}
	}
	if len(s.cur)-s.pos >= n {
		return s.cur[s.pos : s.pos+n : s.pos+n], nil
	}
	if s.next != nil || s.curBuf == nil {
		// Already in spill (n grew past it): not needed by the reader, which peeks at most Size().
		return s.cur[s.pos:], io.ErrUnexpectedEOF
	}
	// The frame straddles this buffer and the next: join the two parts in spill.
	rest := s.cur[s.pos:]
	s.spill = append(s.spill[:0], rest...)
	oldBuf := s.curBuf
	s.curBuf = nil
	if s.err != nil {
		s.release(oldBuf)
		s.cur, s.pos, s.scratch = s.spill, 0, true
		return s.spill, s.endErr(len(s.spill))
	}
	b, ok := <-s.full
	s.release(oldBuf)
	if !ok {
		s.err = io.EOF
		s.cur, s.pos, s.scratch = s.spill, 0, true
		return s.spill, s.endErr(len(s.spill))
	}
	s.err = b.err
	need := min(n-len(rest), len(b.b))
	s.spill = append(s.spill, b.b[:need]...)
	s.cur, s.pos, s.scratch = s.spill, 0, true
	s.next, s.nextOff, s.nextBuf = b.b, need, b.b[:cap(b.b)]
	if len(s.spill) < n {
		return s.spill, s.endErr(len(s.spill))
	}
	return s.spill[:n:n], nil
}

func (s *aheadSource) endErr(have int) error {
	if have == 0 && (s.err == io.EOF || s.err == nil) {
		return io.EOF
	}
	if s.err != nil && s.err != io.EOF {
		return s.err
	}
	return io.ErrUnexpectedEOF
}

func (s *aheadSource) Discard(n int) (int, error) {
	done := 0
	for done < n {
		if s.pos >= len(s.cur) && !s.advance() {
			return done, io.EOF
		}
		k := min(n-done, len(s.cur)-s.pos)
		s.pos += k
		done += k
	}
	return done, nil
}
