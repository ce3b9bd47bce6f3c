-- +goose Up
-- relay_outbox holds the samples waiting for the NetworkSage relay: phase 'upload' until the service
-- has acknowledged the upload, then (optionally) 'poll' until it reports the sample processed. A row is
-- claimed by one worker at a time (claimed_by, claimed_until: a lease in Unix milliseconds).
CREATE TABLE relay_outbox (
    sample_id       TEXT PRIMARY KEY REFERENCES samples (id) ON DELETE CASCADE,
    file_name       TEXT NOT NULL,
    phase           TEXT NOT NULL DEFAULT 'upload',
    attempts        BIGINT NOT NULL DEFAULT 0,
    enqueued_at     BIGINT NOT NULL,
    next_attempt    BIGINT NOT NULL,
    ambiguous_since BIGINT NOT NULL DEFAULT 0,
    remote_id       TEXT NOT NULL DEFAULT '',
    poll_until      BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    claimed_by      TEXT NOT NULL DEFAULT '',
    claimed_at      BIGINT NOT NULL DEFAULT 0,
    claimed_until   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX relay_outbox_due ON relay_outbox (next_attempt);

-- +goose Down
DROP TABLE relay_outbox;
