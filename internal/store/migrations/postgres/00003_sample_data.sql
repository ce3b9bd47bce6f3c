-- +goose Up
-- A sample's .bf content and encoded flows move out of the samples row, as in SQLite (where reading
-- the columns after a large blob walks its overflow pages); PostgreSQL keeps them out of line (TOAST)
-- anyway, but one layout serves both backends.
CREATE TABLE sample_data (
    id      TEXT PRIMARY KEY,
    content BYTEA NOT NULL,
    flows   BYTEA NOT NULL
);
INSERT INTO sample_data (id, content, flows) SELECT id, content, flows FROM samples;
UPDATE samples SET content = '\x'::bytea, flows = '\x'::bytea;

-- +goose Down
UPDATE samples SET content = d.content, flows = d.flows FROM sample_data d WHERE d.id = samples.id;
DROP TABLE sample_data;
