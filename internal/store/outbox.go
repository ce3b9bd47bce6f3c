package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// OutboxPhase is what a relay outbox entry waits for.
type OutboxPhase string

// The outbox phases.
const (
	// PhaseUpload: the sample is to be uploaded to NetworkSage.
	PhaseUpload OutboxPhase = "upload"
	// PhasePoll: the sample was uploaded; NetworkSage is asked now and then whether it has processed it.
	PhasePoll OutboxPhase = "poll"
	// PhaseEnrich: NetworkSage processed the sample; its enriched flows and aggregated view are to be
	// fetched and its summary and categorization requested (docs/enrichment.md).
	PhaseEnrich OutboxPhase = "enrich"
	// PhaseReport: the summary and categorization were requested; they are asked for now and then until
	// NetworkSage says generated or failed.
	PhaseReport OutboxPhase = "report"
)

// OutboxEntry is a claimed relay outbox entry.
type OutboxEntry struct {
	SampleID string
	FileName string
	Phase    OutboxPhase
	// Attempts counts the upload attempts made so far.
	Attempts int
	Enqueued time.Time
	Due      time.Time
	// AmbiguousSince is when the first upload attempt whose outcome is unknown began (the connection
	// broke after the request was sent, a timeout, or a claim whose holder vanished); zero when every
	// earlier attempt is known to have failed. Before uploading again, the relay looks for that upload.
	AmbiguousSince time.Time
	// RemoteID is the NetworkSage sampleId (poll phase).
	RemoteID string
	// PollUntil is when the poll phase gives up (poll phase).
	PollUntil time.Time
	// LastError is the error of the previous attempt, if any.
	LastError string
	// PhaseStarted is when the entry entered its phase (zero for entries queued before migration 00008
	// in the upload and poll phases).
	PhaseStarted time.Time
}

// OutboxRetry reschedules a claimed entry after an attempt that may succeed later.
type OutboxRetry struct {
	SampleID string
	Owner    string
	Due      time.Time
	// Attempted counts an upload attempt (false for a poll or a check that did not upload).
	Attempted bool
	// AmbiguousSince, when not zero, records that the attempt begun then may have reached the service;
	// an earlier value is kept.
	AmbiguousSince time.Time
	LastError      string
}

// OutboxCompletion ends a claimed entry's current phase and records the sample's new state in the same
// transaction.
type OutboxCompletion struct {
	SampleID   string
	Owner      string
	State      SampleState
	RemoteID   string
	RelayError string
	// PollUntil, when not zero, moves the entry to the poll phase (or NextPhase), due at PollAt, instead
	// of removing it.
	PollAt, PollUntil time.Time
	// NextPhase is the phase the entry moves to when PollUntil is set (default PhasePoll); its attempts
	// start again from 0.
	NextPhase OutboxPhase
	// Processed, when not zero, records when NetworkSage was seen to have processed the sample.
	Processed time.Time
	// Labels, when not nil, replaces the sample's flow labels: one per flow, in sample order (a zero
	// FlowLabel for a flow NetworkSage's answer did not match). Destinations are cached (upserted).
	Labels       []FlowLabel
	Destinations []Destination
	// Enrichment, when not nil, replaces what the sample records of NetworkSage's answers.
	Enrichment *Enrichment
}

// OutboxStats describes the relay queue.
type OutboxStats struct {
	// Queued counts entries waiting for an upload.
	Queued int
	// Oldest is when the oldest of them was queued (zero when none is).
	Oldest time.Time
	// Polling counts uploaded samples whose processing is being watched.
	Polling int
	// Enriching counts processed samples whose enrichment is under way (phases enrich and report).
	Enriching int
}

// Outbox is the durable relay queue. CloseWindow puts a sample in it (NewSample.Relay) in the
// transaction that records the sample; workers claim due entries with a lease, so that one entry is
// worked on by one worker at a time, on one collector or on several sharing a PostgreSQL store.
type Outbox interface {
	// ClaimOutbox claims up to limit entries due at now for owner until now + lease, oldest due first.
	// An entry whose earlier claim ran out without an outcome is returned with AmbiguousSince set.
	ClaimOutbox(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxEntry, error)
	// RetryOutbox releases a claimed entry and makes it due again at r.Due; a LastError also becomes
	// the sample's relay error, so that a sample waiting for a retry shows why. It does nothing when
	// owner no longer holds the claim.
	RetryOutbox(ctx context.Context, r OutboxRetry) error
	// CompleteOutbox records the outcome of a claimed entry's phase: the sample's state, remote id and
	// relay error, and the entry removed or moved to the poll phase.
	CompleteOutbox(ctx context.Context, c OutboxCompletion) (*Sample, error)
	// EnqueueRelay (re)queues a sample for upload, due now: its state goes back to written and its remote
	// id and relay error are cleared. ErrNotFound if there is no such sample.
	EnqueueRelay(ctx context.Context, sampleID string, now time.Time) (*Sample, error)
	// ReleaseOutbox ends owner's claims, as after a restart: the entries are due again, and an upload
	// that may have been in flight is marked ambiguous. It returns the number of entries released.
	ReleaseOutbox(ctx context.Context, owner string) (int, error)
	// OutboxStats describes the queue.
	OutboxStats(ctx context.Context) (OutboxStats, error)
}

const outboxCols = `sample_id, file_name, phase, attempts, enqueued_at, next_attempt, ambiguous_since, remote_id,
	poll_until, last_error, phase_started`

// enqueueTx queues a sample for upload inside a transaction.
func (s *sqlStore) enqueueTx(ctx context.Context, tx *sql.Tx, id, fileName string, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO relay_outbox (sample_id, file_name, phase, attempts, enqueued_at,
		next_attempt) VALUES (?, ?, 'upload', 0, ?, ?)
		ON CONFLICT (sample_id) DO UPDATE SET file_name = excluded.file_name, phase = 'upload', attempts = 0,
			enqueued_at = excluded.enqueued_at, next_attempt = excluded.next_attempt, ambiguous_since = 0,
			remote_id = '', poll_until = 0, last_error = ''`), id, fileName, ms(now), ms(now))
	if err != nil {
		return fmt.Errorf("queue for relay: %w", err)
	}
	return nil
}

func (s *sqlStore) ClaimOutbox(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	// A row still carrying a claim (claimed_until > 0) was claimed and never released: its holder died
	// or lost its lease mid-attempt, so an upload may have been sent. SET expressions see the old row.
	rows, err := s.db.QueryContext(ctx, s.q(`UPDATE relay_outbox SET
			ambiguous_since = CASE WHEN claimed_until > 0 AND phase = 'upload' AND ambiguous_since = 0
				THEN claimed_at ELSE ambiguous_since END,
			claimed_by = ?, claimed_at = ?, claimed_until = ?
		WHERE sample_id IN (SELECT sample_id FROM relay_outbox
			WHERE next_attempt <= ? AND claimed_until <= ?
			ORDER BY next_attempt, sample_id LIMIT ?`+lock+`)
		RETURNING `+outboxCols),
		owner, ms(now), ms(now.Add(lease)), ms(now), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var e OutboxEntry
		var phase string
		var enq, due, amb, until, started int64
		if err := rows.Scan(&e.SampleID, &e.FileName, &phase, &e.Attempts, &enq, &due, &amb, &e.RemoteID,
			&until, &e.LastError, &started); err != nil {
			return nil, fmt.Errorf("store: claim outbox: %w", err)
		}
		e.Phase = OutboxPhase(phase)
		e.Enqueued, e.Due = fromMS(enq), fromMS(due)
		if amb > 0 {
			e.AmbiguousSince = fromMS(amb)
		}
		if until > 0 {
			e.PollUntil = fromMS(until)
		}
		if started > 0 {
			e.PhaseStarted = fromMS(started)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim outbox: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Due.Equal(out[j].Due) {
			return out[i].Due.Before(out[j].Due)
		}
		return out[i].SampleID < out[j].SampleID
	})
	return out, nil
}

func (s *sqlStore) RetryOutbox(ctx context.Context, r OutboxRetry) error {
	attempted := 0
	if r.Attempted {
		attempted = 1
	}
	var amb int64
	if !r.AmbiguousSince.IsZero() {
		amb = ms(r.AmbiguousSince)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: retry outbox: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE relay_outbox SET next_attempt = ?, attempts = attempts + ?,
			ambiguous_since = CASE WHEN ambiguous_since = 0 THEN ? ELSE ambiguous_since END,
			last_error = ?, claimed_by = '', claimed_at = 0, claimed_until = 0
		WHERE sample_id = ? AND claimed_by = ? AND claimed_until > 0`),
		ms(r.Due), attempted, amb, r.LastError, r.SampleID, r.Owner)
	if err != nil {
		return fmt.Errorf("store: retry outbox: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 && r.LastError != "" {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE samples SET relay_error = ?, updated_at = ? WHERE id = ?`),
			r.LastError, ms(time.Now()), r.SampleID); err != nil {
			return fmt.Errorf("store: retry outbox: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: retry outbox: commit: %w", err)
	}
	return nil
}

func (s *sqlStore) CompleteOutbox(ctx context.Context, c OutboxCompletion) (*Sample, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: complete outbox: %w", err)
	}
	defer tx.Rollback()
	now := time.Now()
	if c.PollUntil.IsZero() {
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM relay_outbox WHERE sample_id = ? AND claimed_by = ?`), c.SampleID, c.Owner)
	} else {
		phase := c.NextPhase
		if phase == "" {
			phase = PhasePoll
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE relay_outbox SET phase = ?, remote_id = ?, next_attempt = ?,
				poll_until = ?, phase_started = ?, attempts = 0, last_error = '', claimed_by = '', claimed_at = 0,
				claimed_until = 0
			WHERE sample_id = ? AND claimed_by = ?`), string(phase), c.RemoteID, ms(c.PollAt), ms(c.PollUntil), ms(now),
			c.SampleID, c.Owner)
	}
	if err != nil {
		return nil, fmt.Errorf("store: complete outbox: %w", err)
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE samples SET state = ?, remote_id = ?, relay_error = ?, updated_at = ?
		WHERE id = ?`), string(c.State), c.RemoteID, c.RelayError, ms(now), c.SampleID)
	if err != nil {
		return nil, fmt.Errorf("store: complete outbox: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	if err := s.recordEnrichmentTx(ctx, tx, c, now); err != nil {
		return nil, fmt.Errorf("store: complete outbox: %w", err)
	}
	x, err := scanSample(tx.QueryRowContext(ctx, s.q("SELECT "+sampleCols+" FROM samples WHERE id = ?"), c.SampleID))
	if err != nil {
		return nil, fmt.Errorf("store: complete outbox: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: complete outbox: commit: %w", err)
	}
	return x, nil
}

func (s *sqlStore) EnqueueRelay(ctx context.Context, sampleID string, now time.Time) (*Sample, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: enqueue relay: %w", err)
	}
	defer tx.Rollback()
	var fileName string
	err = tx.QueryRowContext(ctx, s.q(`SELECT file_name FROM samples WHERE id = ?`), sampleID).Scan(&fileName)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: enqueue relay: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE samples SET state = ?, remote_id = '', relay_error = '', updated_at = ?
		WHERE id = ?`), string(StateWritten), ms(now), sampleID); err != nil {
		return nil, fmt.Errorf("store: enqueue relay: %w", err)
	}
	if err := s.enqueueTx(ctx, tx, sampleID, fileName, now); err != nil {
		return nil, fmt.Errorf("store: enqueue relay: %w", err)
	}
	x, err := scanSample(tx.QueryRowContext(ctx, s.q("SELECT "+sampleCols+" FROM samples WHERE id = ?"), sampleID))
	if err != nil {
		return nil, fmt.Errorf("store: enqueue relay: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: enqueue relay: commit: %w", err)
	}
	return x, nil
}

func (s *sqlStore) ReleaseOutbox(ctx context.Context, owner string) (int, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE relay_outbox SET
			ambiguous_since = CASE WHEN phase = 'upload' AND ambiguous_since = 0 THEN claimed_at ELSE ambiguous_since END,
			claimed_by = '', claimed_at = 0, claimed_until = 0
		WHERE claimed_by = ? AND claimed_until > 0`), owner)
	if err != nil {
		return 0, fmt.Errorf("store: release outbox: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (s *sqlStore) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	var oldest int64
	err := s.db.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN phase = 'upload' THEN 1 ELSE 0 END), 0),
			COALESCE(MIN(CASE WHEN phase = 'upload' THEN enqueued_at END), 0),
			COALESCE(SUM(CASE WHEN phase = 'poll' THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN phase IN ('enrich', 'report') THEN 1 ELSE 0 END), 0)
		FROM relay_outbox`).Scan(&st.Queued, &oldest, &st.Polling, &st.Enriching)
	if err != nil {
		return st, fmt.Errorf("store: outbox stats: %w", err)
	}
	if oldest > 0 {
		st.Oldest = fromMS(oldest)
	}
	return st, nil
}
