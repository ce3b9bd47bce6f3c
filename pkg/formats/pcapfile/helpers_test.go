package pcapfile

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
)

// bigCapture builds a classic pcap of about size bytes with frames of random lengths, so that many
// records straddle the read-ahead buffers; cut removes bytes from the end.
func bigCapture(size, cut int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144)
	binary.LittleEndian.PutUint32(h[20:], 1)
	b.Write(h)
	for i := 0; b.Len() < size; i++ {
		n := 1 + rng.IntN(3000)
		if i%97 == 0 {
			n = 70000 + rng.IntN(150000) // a few jumbo frames
		}
		rec := make([]byte, 16+n)
		binary.LittleEndian.PutUint32(rec[0:], uint32(i))
		binary.LittleEndian.PutUint32(rec[4:], uint32(i%1000000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(n))
		binary.LittleEndian.PutUint32(rec[12:], uint32(n))
		for j := 16; j < len(rec); j++ {
			rec[j] = byte(i + j)
		}
		b.Write(rec)
	}
	return b.Bytes()[:b.Len()-cut]
}

func readAllFrames(t *testing.T, rd *Reader) ([]Frame, error) {
	t.Helper()
	var out []Frame
	for {
		f, err := rd.Next()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		f.Data = append([]byte(nil), f.Data...)
		out = append(out, f)
	}
}
