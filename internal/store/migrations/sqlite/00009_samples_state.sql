-- +goose Up
-- Samples by state, newest first: `flowctl samples list --state S`, and the closer's start-up and sweep
-- passes over samples whose file is not written yet (state closed or write_failed), which read every
-- sample's row without it. One row per sample, so it costs nothing per flow.
CREATE INDEX samples_state ON samples (state, window_start DESC, id DESC);

-- +goose Down
DROP INDEX samples_state;
