package store

import (
	"math"
	"math/rand/v2"
	"testing"
)

// seqMarks agrees with a plain set of the seqs stored, within RecentSeqs of the mark, and survives
// its encoding.
func TestSeqMarksAgreesWithASet(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 200; round++ {
		var m seqMarks
		stored := map[uint64]bool{}
		seq := uint64(0)
		for i := 0; i < 300; i++ {
			seq += 1 + uint64(r.IntN(3))
			if r.IntN(20) == 0 {
				seq += uint64(r.IntN(400))
			}
			m.add(seq)
			stored[seq] = true
			if r.IntN(10) == 0 {
				m = decodeSeqMarks(int64(m.hwm), m.encode())
			}
			for q := seq - min(seq, RecentSeqs+5); q <= seq+1; q++ {
				want := stored[q] && seq-q < RecentSeqs
				if got := m.stored(q); got != want {
					t.Fatalf("round %d, mark %d: stored(%d) = %v, want %v", round, seq, q, got, want)
				}
			}
		}
	}
}

// A stream recorded before the store kept its recent seqs counts each of them as stored.
func TestSeqMarksLegacy(t *testing.T) {
	m := decodeSeqMarks(1000, nil)
	if !m.stored(1000) || !m.stored(1000-RecentSeqs+1) || m.stored(1000-RecentSeqs) || m.stored(1001) {
		t.Fatal("legacy marks: want the RecentSeqs seqs at and below the mark stored, no others")
	}
	if m := decodeSeqMarks(0, nil); m.stored(0) {
		t.Fatal("a new stream has nothing stored")
	}
}

func TestSatAdd(t *testing.T) {
	for _, c := range [][3]uint64{{1, 2, 3}, {math.MaxInt64, 1, math.MaxInt64}, {math.MaxUint64, 0, math.MaxInt64},
		{1 << 62, 1 << 62, math.MaxInt64}, {1<<62 - 1, 1 << 62, math.MaxInt64}, {1<<62 - 2, 1 << 62, math.MaxInt64 - 1}} {
		if got := satAdd(c[0], c[1]); got != c[2] {
			t.Errorf("satAdd(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}
