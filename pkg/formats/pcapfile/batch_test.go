package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// readBatches reads every batch, checking that each batch's frames are still intact when the batch has
// been read to its end (the buffers they point into were not reused too early), and returns copies.
func readBatches(t *testing.T, br *BatchReader, slow bool) ([]Frame, error) {
	t.Helper()
	var out []Frame
	for {
		b, ok := br.Next()
		if !ok {
			t.Fatal("batches ended without an error batch")
		}
		if len(b.Times) != len(b.Frames) {
			t.Fatalf("%d times for %d frames", len(b.Times), len(b.Frames))
		}
		first := len(out)
		for i, fr := range b.Frames {
			if b.Times[i] != flow.FrameTime(fr.Sec, fr.Usec) {
				t.Fatalf("frame at %d: time %v", fr.Offset, b.Times[i])
			}
			c := fr
			c.Data = bytes.Clone(fr.Data)
			out = append(out, c)
		}
		if slow {
			time.Sleep(2 * time.Millisecond) // let the read-ahead run as far as it can
		}
		for i, fr := range b.Frames {
			if !bytes.Equal(fr.Data, out[first+i].Data) {
				t.Fatalf("frame at %d changed before its batch was released", fr.Offset)
			}
		}
		err := b.Err
		b.Release()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
	}
}

// The batch reader hands out exactly the frames the plain reader does: records that straddle its
// buffers, records cut by the snapshot length (copied), a file cut in the middle of a record.
func TestBatchReaderMatchesReader(t *testing.T) {
	for _, c := range []struct {
		size, cut int
		snaplen   uint32
		slow      bool
	}{{5 << 20, 0, 0, false}, {24<<20 + 12345, 0, 0, true}, {4 << 20, 7, 0, false}, {100, 0, 0, false},
		{2 << 20, 1, 0, false}, {16 << 20, 0, 1000, true}, {24, 0, 0, false}} {
		data := bigCapture(c.size, c.cut, uint64(c.size))
		if c.snaplen != 0 {
			binary.LittleEndian.PutUint32(data[16:], c.snaplen)
		}
		plain, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := readAllFrames(t, plain)
		br, err := NewBatchReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		got, gotErr := readBatches(t, br, c.slow)
		br.Close()
		if errors.Is(wantErr, ErrTruncated) != errors.Is(gotErr, ErrTruncated) || (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("size %d cut %d: errors %v and %v", c.size, c.cut, wantErr, gotErr)
		}
		if len(got) != len(want) {
			t.Fatalf("size %d cut %d: %d frames, want %d", c.size, c.cut, len(got), len(want))
		}
		for i := range want {
			if got[i].Sec != want[i].Sec || got[i].Usec != want[i].Usec || got[i].Offset != want[i].Offset ||
				!bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("size %d snaplen %d: frame %d differs (offset %d)", c.size, c.snaplen, i, want[i].Offset)
			}
		}
	}
}

// Closing the batch reader early stops its goroutines without reading the rest; a file that is not a
// capture is refused at once.
func TestBatchReaderClose(t *testing.T) {
	br, err := NewBatchReader(bytes.NewReader(bigCapture(16<<20, 0, 3)))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := br.Next()
	if !ok || len(b.Frames) == 0 {
		t.Fatal("no first batch")
	}
	done := make(chan struct{})
	go func() {
		br.Close()
		br.Close() // twice is fine
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a batch was held")
	}
	b.Release()
	if _, err := NewBatchReader(bytes.NewReader([]byte("not a capture"))); !errors.Is(err, ErrNotCapture) {
		t.Fatalf("not a capture: %v", err)
	}
}
