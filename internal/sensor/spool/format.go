package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

// The batch file format, version 1. All integers are big-endian.
//
//	offset size  field
//	0      4     magic "FFSB"
//	4      2     format version (1)
//	6      2     header size (24)
//	8      8     seq, equal to the FlowBatch.seq inside
//	16     4     payload length in bytes
//	20     4     CRC32C (Castagnoli) of the payload
//	24     n     payload: the FlowBatch, protobuf binary encoding
const (
	Magic         = "FFSB"
	FormatVersion = 1
	HeaderSize    = 24
	// MaxPayload bounds a batch file's payload: 10,000 flows of the largest names stay far below it.
	MaxPayload = 64 << 20
)

// ErrCorrupt is the class of every decoding error: the file is not a whole, valid batch.
var ErrCorrupt = errors.New("corrupt spool file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the file bytes of b; b.Seq must be set.
func Encode(b *flowfleetv1.FlowBatch) ([]byte, error) {
	if b.GetSeq() == 0 {
		return nil, errors.New("encode batch: seq not set")
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode batch %d: %w", b.GetSeq(), err)
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("encode batch %d: %d bytes, more than the %d a spool file may hold", b.GetSeq(), len(payload), MaxPayload)
	}
	out := make([]byte, HeaderSize+len(payload))
	copy(out[0:4], Magic)
	binary.BigEndian.PutUint16(out[4:6], FormatVersion)
	binary.BigEndian.PutUint16(out[6:8], HeaderSize)
	binary.BigEndian.PutUint64(out[8:16], b.GetSeq())
	binary.BigEndian.PutUint32(out[16:20], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[20:24], crc32.Checksum(payload, castagnoli))
	copy(out[HeaderSize:], payload)
	return out, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Decode parses the bytes of a batch file. Every error wraps ErrCorrupt. It never panics, and it
// allocates no more than the input's size for the payload (the length field is checked against the
// input first).
func Decode(data []byte) (*flowfleetv1.FlowBatch, error) {
	if len(data) < HeaderSize {
		return nil, corrupt("%d bytes, shorter than the %d-byte header", len(data), HeaderSize)
	}
	if string(data[0:4]) != Magic {
		return nil, corrupt("bad magic %q", data[0:4])
	}
	if v := binary.BigEndian.Uint16(data[4:6]); v != FormatVersion {
		return nil, corrupt("format version %d, want %d", v, FormatVersion)
	}
	if h := binary.BigEndian.Uint16(data[6:8]); h != HeaderSize {
		return nil, corrupt("header size %d, want %d", h, HeaderSize)
	}
	seq := binary.BigEndian.Uint64(data[8:16])
	if seq == 0 {
		return nil, corrupt("seq 0")
	}
	n := binary.BigEndian.Uint32(data[16:20])
	if n > MaxPayload {
		return nil, corrupt("payload length %d over the limit %d", n, MaxPayload)
	}
	if int(n) != len(data)-HeaderSize {
		return nil, corrupt("payload length %d, but the file holds %d bytes after the header", n, len(data)-HeaderSize)
	}
	payload := data[HeaderSize:]
	if got, want := crc32.Checksum(payload, castagnoli), binary.BigEndian.Uint32(data[20:24]); got != want {
		return nil, corrupt("CRC32C %08x, header says %08x", got, want)
	}
	b := new(flowfleetv1.FlowBatch)
	if err := proto.Unmarshal(payload, b); err != nil {
		return nil, corrupt("protobuf: %v", err)
	}
	if b.GetSeq() != seq {
		return nil, corrupt("batch seq %d, header says %d", b.GetSeq(), seq)
	}
	return b, nil
}
