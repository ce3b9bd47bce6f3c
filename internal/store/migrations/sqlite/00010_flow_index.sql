-- +goose Up
-- Fleet search (docs/search.md): one row per sample × destination key (source and destination
-- address, destination port, name, name source, protocol, category), summing its flows, packets and
-- bytes (both ways). The keys make "who talked to X" an index lookup: dst_key and src_key are the
-- address as 32 hex digits (IPv4 mapped into IPv6), so a CIDR is a range; name_rev is the name's
-- labels reversed ("com.example.a."), so a "*.example.com" glob is a range too.
CREATE TABLE flow_index (
    sample_id    TEXT NOT NULL REFERENCES samples (id) ON DELETE CASCADE,
    host         TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    src_key      TEXT NOT NULL,
    dst_key      TEXT NOT NULL,
    dst_port     INTEGER NOT NULL, -- -1 for ICMP/ICMPv6
    dst_name     TEXT NOT NULL,
    name_rev     TEXT NOT NULL,
    name_source  TEXT NOT NULL,
    protocol     TEXT NOT NULL,
    category     TEXT NOT NULL,
    flows        INTEGER NOT NULL,
    packets      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL
);
CREATE INDEX flow_index_name ON flow_index (name_rev, window_start);
CREATE INDEX flow_index_dst ON flow_index (dst_key, window_start);
CREATE INDEX flow_index_port ON flow_index (dst_port, window_start);
CREATE INDEX flow_index_window ON flow_index (window_start);
CREATE INDEX flow_index_sample ON flow_index (sample_id);

-- Which samples the indexer has done, and whether with their flow labels (an enriched sample is
-- indexed again once, to add its categories). A sample missing here is indexed, old ones included.
CREATE TABLE flow_index_samples (
    sample_id  TEXT PRIMARY KEY REFERENCES samples (id) ON DELETE CASCADE,
    labeled    INTEGER NOT NULL,
    indexed_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE flow_index_samples;
DROP TABLE flow_index;
