-- +goose Up
-- Retention (prune.go). A closed window whose batches were pruned has state 'pruned', and
-- pruned_revision is the revision it had then: that revision's sample was built from every batch
-- pruned, so a late batch's revision is built from it plus the batches received since. It stays set
-- when a late batch reopens the window. windows_start finds the windows past the sample retention.
ALTER TABLE windows ADD COLUMN pruned_revision BIGINT NOT NULL DEFAULT 0;
CREATE INDEX windows_start ON windows (window_start, host);

-- +goose Down
DROP INDEX windows_start;
UPDATE windows SET state = 'closed' WHERE state = 'pruned';
ALTER TABLE windows DROP COLUMN pruned_revision;
