-- +goose Up
-- Window-close isolation (issue #14): a window whose sample cannot be written is retried with backoff
-- (next_close_at, Unix milliseconds) without holding up the others, and close_error keeps the last
-- failure. The per-window bound counts encoded flow bytes (flow_bytes) and the flows it dropped.
ALTER TABLE windows ADD COLUMN close_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE windows ADD COLUMN next_close_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE windows ADD COLUMN close_error TEXT NOT NULL DEFAULT '';
ALTER TABLE windows ADD COLUMN flow_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE windows ADD COLUMN flows_dropped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN write_error TEXT NOT NULL DEFAULT '';
ALTER TABLE samples ADD COLUMN flows_dropped INTEGER NOT NULL DEFAULT 0;
-- A sample's ordered flows in chunks of 1,000 (the last may hold fewer), so that a page of
-- ListSampleFlows reads only the chunks it needs. Samples written before keep sample_data.flows.
CREATE TABLE sample_flow_chunks (
    sample_id TEXT NOT NULL,
    chunk     INTEGER NOT NULL,
    flows     BLOB NOT NULL,
    PRIMARY KEY (sample_id, chunk)
);

-- +goose Down
DROP TABLE sample_flow_chunks;
ALTER TABLE samples DROP COLUMN flows_dropped;
ALTER TABLE samples DROP COLUMN write_error;
ALTER TABLE windows DROP COLUMN flows_dropped;
ALTER TABLE windows DROP COLUMN flow_bytes;
ALTER TABLE windows DROP COLUMN close_error;
ALTER TABLE windows DROP COLUMN next_close_at;
ALTER TABLE windows DROP COLUMN close_attempts;
