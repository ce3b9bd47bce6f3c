// Package spool is the sensor's disk spool: every flow batch is written here, durably, before it is
// sent, and removed only when a collector acknowledges it, so neither a lost connection nor a crash
// loses flows.
//
// # Layout
//
// One directory (the sensor's --spool-dir) holds:
//
//   - <seq, 20 digits>.batch: one FlowBatch per file, in the format Encode writes (magic "FFSB", format
//     version, seq, payload length, CRC32C, then the protobuf payload); written to a temporary file,
//     fsynced and renamed into place, so a file is either whole or absent;
//   - stream-id: the stream id, 128 random bits in hex, created on first Open and kept for good;
//   - seq: the highest seq ever assigned, so seqs keep increasing across restarts even when every batch
//     was acknowledged (next seq = max(seq file, highest spooled) + 1);
//   - corrupt/: files that failed to decode, moved aside (at most Options.MaxCorrupt are kept);
//   - lock: flock'd while a Spool is open, so two sensors cannot share a directory.
//
// # Bounds
//
// The batch files together stay under Options.MaxBytes: past it the oldest batches are deleted, counted
// (metrics, TakeLosses) and logged at warn level with their seq range — never silently.
//
// # Concurrency
//
// A Spool is safe for concurrent use; Append is meant for one producer and Changed for one consumer.
package spool
