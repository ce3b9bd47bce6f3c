package pcapfile

import (
	"bytes"
	"io"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// BatchReader reads a capture on goroutines of its own: one reads the file ahead into 1 MiB buffers
// (aheadSource), another parses the records there and hands out batches of frames, with
// their times, whose bytes stay valid until the batch is released. The caller's goroutine is left
// only its own work on the frames.
type BatchReader struct {
	rd      *Reader
	src     *aheadSource
	out     chan *Batch
	free    chan *Batch
	stop    chan struct{}
	stopped chan struct{}
}

// Batch is a run of frames from a BatchReader, in file order.
type Batch struct {
	Frames []Frame
	Times  []float64 // Times[i] is flow.FrameTime of Frames[i] (R-PCAP-2)
	// Err, when not nil, is what ended the reading after these frames: as Reader.Next returns it
	// (io.EOF at the end).
	Err error
	End int64 // the byte offset after the batch's last record

	retired [][]byte // read buffers no frame of this or a later batch points into
	owner   *BatchReader
}

const (
	batchFrames  = 4096
	batchBuffers = 6 // read buffers: the batches in flight and the read-ahead share them
	batchesOut   = 2
)

// NewBatchReader reads the file header and starts reading, as libpcap reads. Close must be called.
func NewBatchReader(r io.Reader) (*BatchReader, error) { return NewBatchReaderWith(r, Options{}) }

// NewBatchReaderWith is NewBatchReader with options.
func NewBatchReaderWith(r io.Reader, opts Options) (*BatchReader, error) {
	src := &aheadSource{full: make(chan aheadBuf, 2), free: make(chan []byte, batchBuffers), done: make(chan struct{}),
		retire: true}
	for i := 0; i < batchBuffers; i++ {
		src.free <- nil // made when first needed (fill)
	}
	go src.fill(r)
	rd, err := newReader(src, opts)
	if err != nil {
		src.close()
		return nil, err
	}
	br := &BatchReader{rd: rd, src: src, out: make(chan *Batch, batchesOut), free: make(chan *Batch, batchesOut+2),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	for i := 0; i < batchesOut+2; i++ {
		br.free <- &Batch{owner: br} // its slices grow when first used
	}
	go br.run()
	return br, nil
}

// ReadPastMixed is Reader.ReadPastMixed; call it after the batch whose Err ended the reading.
func (br *BatchReader) ReadPastMixed() bool { return br.rd.ReadPastMixed() }

// LinkType is Reader.LinkType.
func (br *BatchReader) LinkType() (flow.LinkType, bool) { return br.rd.LinkType() }

func (br *BatchReader) run() {
	defer close(br.stopped)
	defer close(br.out)
	for {
		var b *Batch
		select {
		case b = <-br.free:
		case <-br.stop:
			return
		}
		b.Frames, b.Times, b.Err = b.Frames[:0], b.Times[:0], nil
		for len(b.Frames) < batchFrames && len(br.src.retired) == 0 {
			fr, err := br.rd.Next()
			if err != nil {
				b.Err = err
				break
			}
			if br.rd.copied {
				// The bytes are in a scratch buffer that the next record overwrites.
				fr.Data = bytes.Clone(fr.Data)
			}
			b.Frames = append(b.Frames, fr)
			b.Times = append(b.Times, flow.FrameTime(fr.Sec, fr.Usec))
		}
		// Buffers retired while this batch was filled hold frames of this batch or earlier ones only:
		// they are free once this batch is released (batches are released in order).
		b.End = br.rd.Offset()
		b.retired = append(b.retired[:0], br.src.retired...)
		br.src.retired = br.src.retired[:0]
		select {
		case br.out <- b:
		case <-br.stop:
			return
		}
		if b.Err != nil {
			return
		}
	}
}

// Next returns the next batch; false after the batch that carried an error (io.EOF at the end) or after
// Close. Release each batch before the next call.
func (br *BatchReader) Next() (*Batch, bool) {
	b, ok := <-br.out
	return b, ok
}

// Release gives the batch's memory back: its frames' bytes are no longer valid.
func (b *Batch) Release() {
	for _, buf := range b.retired {
		select {
		case b.owner.src.free <- buf:
		default:
		}
	}
	b.retired = b.retired[:0]
	select {
	case b.owner.free <- b:
	default:
	}
}

// Close stops the reading goroutines. It may be called at any time, more than once.
func (br *BatchReader) Close() {
	select {
	case <-br.stop:
	default:
		close(br.stop)
	}
	br.src.close()
	<-br.stopped
}
