package spool_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/spool"
)

// FuzzSpoolRead checks the spool file decoder on arbitrary bytes: it never panics, every error is
// ErrCorrupt, a decoded batch re-encodes to a file that decodes to the same batch, and no input takes
// long. Seeds are in testdata/fuzz/FuzzSpoolRead.
func FuzzSpoolRead(f *testing.F) {
	good, err := spool.Encode(&flowfleetv1.FlowBatch{Seq: 7, Flows: batch(3).Flows, Drops: &flowfleetv1.DropCounters{KernelPackets: 2}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:spool.HeaderSize])
	f.Add(encodeRaw(1, nil))
	f.Add(encodeRaw(1, []byte{0x08, 0x01}))
	f.Add([]byte("FFSB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		b, err := spool.Decode(data)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("decode took %s on %d bytes", d, len(data))
		}
		if err != nil {
			if !errors.Is(err, spool.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			if b != nil {
				t.Fatal("batch returned with an error")
			}
			return
		}
		if b.GetSeq() == 0 {
			t.Fatal("decoded a batch with seq 0")
		}
		again, err := spool.Encode(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b2, err := spool.Decode(again)
		if err != nil {
			t.Fatalf("decode of re-encoded batch: %v", err)
		}
		if !proto.Equal(b, b2) {
			t.Fatal("round trip changed the batch")
		}
		if !bytes.Equal(data[:4], again[:4]) {
			t.Fatal("magic changed")
		}
	})
}
