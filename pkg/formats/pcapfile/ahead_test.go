package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
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

// The read-ahead reader hands out exactly the frames the plain reader does, including frames that
// straddle its buffers and a file cut in the middle of a record.
func TestReaderAheadMatchesReader(t *testing.T) {
	for _, c := range []struct {
		size, cut int
	}{{5 << 20, 0}, {3<<20 + 12345, 0}, {4 << 20, 7}, {100, 0}, {2 << 20, 1}} {
		data := bigCapture(c.size, c.cut, uint64(c.size))
		plain, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := readAllFrames(t, plain)
		ahead, closeAhead, err := NewReaderAhead(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		got, gotErr := readAllFrames(t, ahead)
		closeAhead()
		if errors.Is(wantErr, ErrTruncated) != errors.Is(gotErr, ErrTruncated) || (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("size %d cut %d: errors %v and %v", c.size, c.cut, wantErr, gotErr)
		}
		if len(got) != len(want) {
			t.Fatalf("size %d cut %d: %d frames, want %d", c.size, c.cut, len(got), len(want))
		}
		for i := range want {
			if got[i].Sec != want[i].Sec || got[i].Usec != want[i].Usec || got[i].Offset != want[i].Offset ||
				!bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("size %d: frame %d differs (offset %d)", c.size, i, want[i].Offset)
			}
		}
	}
}

// Closing the reader early stops its goroutine without reading the rest.
func TestReaderAheadClose(t *testing.T) {
	data := bigCapture(6<<20, 0, 3)
	rd, closeAhead, err := NewReaderAhead(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	closeAhead()
	closeAhead() // twice is fine
	if _, _, err := NewReaderAhead(bytes.NewReader([]byte("not a capture"))); !errors.Is(err, ErrNotCapture) {
		t.Fatalf("not a capture: %v", err)
	}
}
