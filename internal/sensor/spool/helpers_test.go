package spool_test

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"

	"github.com/flowfleet/flowfleet/internal/sensor/spool"
)

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// encodeRaw builds a file with a valid header around any payload.
func encodeRaw(seq uint64, payload []byte) []byte {
	out := make([]byte, spool.HeaderSize+len(payload))
	copy(out, spool.Magic)
	binary.BigEndian.PutUint16(out[4:], spool.FormatVersion)
	binary.BigEndian.PutUint16(out[6:], spool.HeaderSize)
	binary.BigEndian.PutUint64(out[8:], seq)
	binary.BigEndian.PutUint32(out[16:], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[20:], crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	copy(out[spool.HeaderSize:], payload)
	return out
}
