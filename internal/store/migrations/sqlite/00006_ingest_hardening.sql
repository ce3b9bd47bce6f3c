-- +goose Up
-- Ingest hardening (issue 14). flows_dropped counts the flows sensors reported lost
-- (DropCounters.sensor_flows), apart from drops_reported, which counts packets. streams.recent
-- records which of the 256 seqs at and below the stream's mark (hwm) were stored (store.seqMarks): a
-- replayed seq is a duplicate only if it was stored. A stream recorded before has an empty recent,
-- read as "every one of the 256 seqs below the mark was stored" (the old rule, within that range).
-- Counters that overflowed under the old unsaturated sums (stored as REAL by SQLite, or negative from a
-- count of 2^63 or more) are saturated to 2^63-1 so that every reader can scan them again.
ALTER TABLE hosts ADD COLUMN flows_dropped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN recent BLOB NOT NULL DEFAULT x'';
UPDATE hosts SET drops_reported = 9223372036854775807
    WHERE typeof(drops_reported) <> 'integer' OR drops_reported < 0;
UPDATE hosts SET flows_received = 9223372036854775807
    WHERE typeof(flows_received) <> 'integer' OR flows_received < 0;

-- +goose Down
ALTER TABLE streams DROP COLUMN recent;
ALTER TABLE hosts DROP COLUMN flows_dropped;
