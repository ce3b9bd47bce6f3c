-- +goose Up
-- A sample's .bf content and encoded flows (hundreds of kilobytes) move out of the samples row. In
-- SQLite a column stored after a large blob can only be read by walking the blob's overflow pages, so
-- listing samples (whose created_at and updated_at follow content and flows) read every sample's
-- content from disk: ListSamples cost grew with the bytes of the samples listed, not their number.
CREATE TABLE sample_data (
    id      TEXT PRIMARY KEY,
    content BLOB NOT NULL,
    flows   BLOB NOT NULL
);
INSERT INTO sample_data (id, content, flows) SELECT id, content, flows FROM samples;
UPDATE samples SET content = X'', flows = X'';

-- +goose Down
UPDATE samples SET content = (SELECT content FROM sample_data WHERE sample_data.id = samples.id),
    flows = (SELECT flows FROM sample_data WHERE sample_data.id = samples.id);
DROP TABLE sample_data;
