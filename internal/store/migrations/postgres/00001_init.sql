-- +goose Up
CREATE TABLE hosts (
    name             TEXT PRIMARY KEY,
    stream_id        TEXT NOT NULL DEFAULT '',
    software_version TEXT NOT NULL DEFAULT '',
    window_seconds   BIGINT NOT NULL DEFAULT 0,
    first_contact    BIGINT NOT NULL,
    last_contact     BIGINT NOT NULL,
    connected        BIGINT NOT NULL DEFAULT 0,
    collector        TEXT NOT NULL DEFAULT '',
    flows_received   BIGINT NOT NULL DEFAULT 0,
    drops_reported   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE streams (
    host      TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    hwm       BIGINT NOT NULL,
    PRIMARY KEY (host, stream_id)
);
CREATE TABLE windows (
    host             TEXT NOT NULL,
    window_start     BIGINT NOT NULL,
    window_seconds   BIGINT NOT NULL,
    state            TEXT NOT NULL,
    end_marked       BIGINT NOT NULL DEFAULT 0,
    first_frame_time DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_batch_at    BIGINT NOT NULL,
    revision         BIGINT NOT NULL DEFAULT 0,
    flow_count       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (host, window_start)
);
CREATE INDEX windows_open ON windows (state, last_batch_at);
CREATE TABLE window_batches (
    id           BIGSERIAL PRIMARY KEY,
    host         TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    stream_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    flow_count   BIGINT NOT NULL,
    flows        BYTEA NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX window_batches_window ON window_batches (host, window_start, id);
CREATE TABLE samples (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    window_start   BIGINT NOT NULL,
    window_seconds BIGINT NOT NULL,
    revision       BIGINT NOT NULL,
    flow_count     BIGINT NOT NULL,
    bytes          BIGINT NOT NULL,
    state          TEXT NOT NULL,
    file_name      TEXT NOT NULL,
    remote_id      TEXT NOT NULL DEFAULT '',
    relay_error    TEXT NOT NULL DEFAULT '',
    content        BYTEA NOT NULL,
    flows          BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX samples_list ON samples (window_start DESC, id DESC);
CREATE INDEX samples_host ON samples (host, window_start DESC);

-- +goose Down
DROP TABLE samples;
DROP TABLE window_batches;
DROP TABLE windows;
DROP TABLE streams;
DROP TABLE hosts;
