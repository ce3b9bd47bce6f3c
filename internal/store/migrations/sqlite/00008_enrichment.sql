-- +goose Up
-- NetworkSage enrichment (docs/enrichment.md). A processed sample stays in relay_outbox in phase
-- 'enrich' (fetch its enriched flows and aggregated view, ask for its summary and categorization), then
-- 'report' (poll those until generated or failed); phase_started is when the entry entered its phase.
ALTER TABLE relay_outbox ADD COLUMN phase_started INTEGER NOT NULL DEFAULT 0;

-- What came back, per sample: the verdict, confidence and summary text of the summary (or else the
-- categorization), why enrichment failed or what of it did not come back, and how NetworkSage's flows
-- matched the sample's: flows_matched + flows_unmatched = flow_count; remote_unmatched counts
-- NetworkSage flows that matched none of the sample's.
ALTER TABLE samples ADD COLUMN verdict TEXT NOT NULL DEFAULT '';
ALTER TABLE samples ADD COLUMN confidence TEXT NOT NULL DEFAULT '';
ALTER TABLE samples ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE samples ADD COLUMN enrich_error TEXT NOT NULL DEFAULT '';
ALTER TABLE samples ADD COLUMN flows_matched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN flows_unmatched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN remote_unmatched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN processed_at INTEGER NOT NULL DEFAULT 0;

-- Per flow: category, flowId and eventId, one row per chunk of store.FlowChunkFlows flows (as
-- sample_flow_chunks), a JSON array with one [category, flowId, eventId] per flow of the chunk.
CREATE TABLE sample_flow_labels (
    sample_id TEXT NOT NULL REFERENCES samples (id) ON DELETE CASCADE,
    chunk     INTEGER NOT NULL,
    labels    BLOB NOT NULL,
    PRIMARY KEY (sample_id, chunk)
);

-- Per destination (name:port as NetworkSage writes it): its metadata, kept until expires_at.
CREATE TABLE sage_destinations (
    name        TEXT PRIMARY KEY,
    title       TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    relevance   TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    fetched_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sage_destinations_expiry ON sage_destinations (expires_at);

-- +goose Down
DROP TABLE sage_destinations;
DROP TABLE sample_flow_labels;
ALTER TABLE samples DROP COLUMN processed_at;
ALTER TABLE samples DROP COLUMN remote_unmatched;
ALTER TABLE samples DROP COLUMN flows_unmatched;
ALTER TABLE samples DROP COLUMN flows_matched;
ALTER TABLE samples DROP COLUMN enrich_error;
ALTER TABLE samples DROP COLUMN summary;
ALTER TABLE samples DROP COLUMN confidence;
ALTER TABLE samples DROP COLUMN verdict;
ALTER TABLE relay_outbox DROP COLUMN phase_started;
