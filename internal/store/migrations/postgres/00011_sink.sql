-- +goose Up
-- sink_outbox holds the samples waiting to be published to the message bus (internal/sink,
-- docs/sink.md). CloseWindow queues a sample in the transaction that records it; a row is claimed by one
-- worker at a time (claimed_by, claimed_until: a lease in Unix milliseconds) and deleted only after the
-- bus acknowledged every message of the sample.
CREATE TABLE sink_outbox (
    sample_id     TEXT PRIMARY KEY REFERENCES samples (id) ON DELETE CASCADE,
    enqueued_at   BIGINT NOT NULL,
    next_attempt  BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    claimed_by    TEXT NOT NULL DEFAULT '',
    claimed_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sink_outbox_due ON sink_outbox (next_attempt);

-- +goose Down
DROP TABLE sink_outbox;
