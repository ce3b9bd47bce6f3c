-- +goose Up
-- content_sha256 is the SHA-256 of a sample's .bf content, recorded when the sample is written and
-- checked whenever the content is read (SampleContent): bytes changed on disk are reported as data loss,
-- never served. Samples written before this migration have NULL: their checksum is unknown and their
-- content is served unchecked (hashing it now would vouch for bytes that may already be damaged).
ALTER TABLE sample_data ADD COLUMN content_sha256 BLOB;

-- health_probe takes the collectors' write probes (CheckWritable): one row per collector, overwritten
-- every few seconds, so the table stays as small as the fleet's number of collectors.
CREATE TABLE health_probe (
    collector TEXT PRIMARY KEY,
    probed_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE health_probe;
ALTER TABLE sample_data DROP COLUMN content_sha256;
