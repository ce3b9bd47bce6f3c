-- +goose Up
CREATE TABLE hosts (
    name             TEXT PRIMARY KEY,
    stream_id        TEXT NOT NULL DEFAULT '',
    software_version TEXT NOT NULL DEFAULT '',
    window_seconds   INTEGER NOT NULL DEFAULT 0,
    first_contact    INTEGER NOT NULL,
    last_contact     INTEGER NOT NULL,
    connected        INTEGER NOT NULL DEFAULT 0,
    collector        TEXT NOT NULL DEFAULT '',
    flows_received   INTEGER NOT NULL DEFAULT 0,
    drops_reported   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE streams (
    host      TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    hwm       INTEGER NOT NULL,
    PRIMARY KEY (host, stream_id)
);
CREATE TABLE windows (
    host             TEXT NOT NULL,
    window_start     INTEGER NOT NULL,
    window_seconds   INTEGER NOT NULL,
    state            TEXT NOT NULL,
    end_marked       INTEGER NOT NULL DEFAULT 0,
    first_frame_time REAL NOT NULL DEFAULT 0,
    last_batch_at    INTEGER NOT NULL,
    revision         INTEGER NOT NULL DEFAULT 0,
    flow_count       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (host, window_start)
);
CREATE INDEX windows_open ON windows (state, last_batch_at);
CREATE TABLE window_batches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    host         TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    stream_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    flow_count   INTEGER NOT NULL,
    flows        BLOB NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE INDEX window_batches_window ON window_batches (host, window_start, id);
CREATE TABLE samples (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    window_start   INTEGER NOT NULL,
    window_seconds INTEGER NOT NULL,
    revision       INTEGER NOT NULL,
    flow_count     INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    state          TEXT NOT NULL,
    file_name      TEXT NOT NULL,
    remote_id      TEXT NOT NULL DEFAULT '',
    relay_error    TEXT NOT NULL DEFAULT '',
    content        BLOB NOT NULL,
    flows          BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX samples_list ON samples (window_start DESC, id DESC);
CREATE INDEX samples_host ON samples (host, window_start DESC);

-- +goose Down
DROP TABLE samples;
DROP TABLE window_batches;
DROP TABLE windows;
DROP TABLE streams;
DROP TABLE hosts;
