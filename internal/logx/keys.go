package logx

// The log keys every component shares. Code may write them as these constants or as the same literal;
// either way TestLogKeysAreDocumented checks every key of every slog call under internal/ and cmd/
// against Keys.
const (
	KeyErr         = "err"          // an error (never "error")
	KeyHost        = "host"         // a sensor's host name, from its certificate
	KeySample      = "sample"       // a sample's id
	KeyWindowStart = "window_start" // a window's start, epoch seconds
	KeySeq         = "seq"          // a batch's number in its stream
	KeyStreamID    = "stream_id"    // an ingest stream's id
	KeyReason      = "reason"       // why something was refused or dropped (a metric's reason label)
	KeyAttempts    = "attempts"     // how many attempts so far
	KeyRetryIn     = "retry_in"     // the wait before the next attempt (a backoff)
	KeyFile        = "file"         // a file's path
	KeyDir         = "dir"          // a directory's path
	KeyAddr        = "addr"         // a listening or dialled address
	KeyTook        = "took"         // how long something took
)

// Keys is the documented set of log keys, lower_snake_case, one spelling per meaning. A key used in a
// log call and missing here fails TestLogKeysAreDocumented: use one of these, or add the new key here
// with its meaning.
var Keys = []string{
	// shared (above)
	KeyErr, KeyHost, KeySample, KeyWindowStart, KeySeq, KeyStreamID, KeyReason, KeyAttempts, KeyRetryIn,
	KeyFile, KeyDir, KeyAddr, KeyTook,
	// errors and panics
	"panic", "panics_total", "stack", "hint", "check",
	// identity and TLS
	"identity", "subject", "cert_file", "ca_file", "not_after", "left", "grpc_method", "peer",
	// sensor: capture, engine, spool, shipping
	"interface", "interfaces", "capture", "filter", "snaplen", "buffer_bytes", "ring", "ring_bytes",
	"link_type", "packet_time", "frame_bytes", "frame_hex", "truncated", "spool_dir", "max_bytes",
	"max_flows", "dropped", "first_seq", "last_seq", "collectors", "next_collector", "collector_version",
	"code", "message", "moved_to",
	// the collector's window adopted by a sensor (Welcome.window_seconds)
	"window_seconds", "collector_window_seconds", "configured_window_seconds", "from_seconds", "to_seconds",
	// collector: ingest, windows, samples, retention, store
	"collector", "version", "window", "grace", "data_dir", "store", "backend", "old_stream_id",
	"other_stream_id", "open_streams", "flow", "flows", "flows_dropped", "batches", "late_batches",
	"revision", "base_revision", "bytes", "samples", "files", "entries", "path", "paths", "failed_attempts",
	"retention", "prune_every", "batches_of_closed_windows", "handshake_timeout", "max_connections",
	"deadline", "component",
	// relay and the NetworkSage tools
	"url", "type", "concurrency", "status", "uncertain", "attempt", "remote_id", "previous_state", "fake",
	"processing_delay", "state",
	// enrichment (docs/enrichment.md): the failed step, what came back, how the flows matched
	"step", "verdict", "confidence", "note", "matched", "unmatched", "remote_unmatched", "destinations",
}
