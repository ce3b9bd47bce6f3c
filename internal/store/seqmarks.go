package store

import (
	"encoding/binary"
	"math"
)

// RecentSeqs is how many seqs at and below a stream's mark the store remembers individually: a batch
// replayed with a seq in that range is a duplicate if and only if it was stored; a seq further below
// the mark is refused (OutOfOrder). It is 4× the sensor's default in-flight bound (64), and the
// collector stores a stream's batches in order, so a genuine replay after a reconnect always falls
// inside it.
const RecentSeqs = 256

// MaxSeq is the largest seq the store takes (marks are signed 64-bit columns).
const MaxSeq = math.MaxInt64

// seqMarks is one stream's dedup state: the mark (highest seq stored) and, in bits, which of the
// RecentSeqs seqs at and below it were stored (bit i: seq hwm−i).
type seqMarks struct {
	hwm  uint64
	bits [RecentSeqs / 64]uint64
}

// decodeSeqMarks reads the streams row. An empty recent (a stream recorded before the store kept it)
// counts every recent seq as stored: the rule the store had then, bounded to RecentSeqs.
func decodeSeqMarks(hwm int64, recent []byte) seqMarks {
	m := seqMarks{hwm: uint64(max(hwm, 0))}
	if len(recent) != 8*len(m.bits) {
		if m.hwm > 0 {
			for i := range m.bits {
				m.bits[i] = math.MaxUint64
			}
		}
		return m
	}
	for i := range m.bits {
		m.bits[i] = binary.LittleEndian.Uint64(recent[8*i:])
	}
	return m
}

func (m *seqMarks) encode() []byte {
	b := make([]byte, 8*len(m.bits))
	for i, w := range m.bits {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

// stored reports a seq at or below the mark that was stored.
func (m *seqMarks) stored(seq uint64) bool {
	if seq > m.hwm || m.hwm-seq >= RecentSeqs {
		return false
	}
	i := m.hwm - seq
	return m.bits[i/64]&(1<<(i%64)) != 0
}

// add records seq, above the mark, as stored: the mark moves to it.
func (m *seqMarks) add(seq uint64) {
	m.shift(seq - m.hwm)
	m.hwm = seq
	m.bits[0] |= 1
}

// shift moves every bit d places up (towards older seqs); bits past RecentSeqs fall off.
func (m *seqMarks) shift(d uint64) {
	n := uint64(len(m.bits))
	if d >= 64*n {
		m.bits = [RecentSeqs / 64]uint64{}
		return
	}
	words, off := d/64, d%64
	var out [RecentSeqs / 64]uint64
	for i := n - 1; i >= words && i < n; i-- {
		out[i] = m.bits[i-words] << off
		if off > 0 && i > words {
			out[i] |= m.bits[i-words-1] >> (64 - off)
		}
	}
	m.bits = out
}

// satAdd adds two counters, saturating at math.MaxInt64 (the largest value the stores' signed 64-bit
// columns hold) instead of wrapping.
func satAdd(a, b uint64) uint64 {
	a, b = min(a, MaxSeq), min(b, MaxSeq)
	if a > MaxSeq-b {
		return MaxSeq
	}
	return a + b
}
