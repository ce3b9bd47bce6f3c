package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// SinkEntry is a claimed entry of the sink queue: a sample to publish to the message bus.
type SinkEntry struct {
	SampleID string
	// Attempts counts the earlier attempts that failed.
	Attempts int
	Enqueued time.Time
}

// SinkStats describes the sink queue.
type SinkStats struct {
	// Queued counts the samples waiting to be published.
	Queued int
	// Oldest is when the oldest of them was queued (zero when none is).
	Oldest time.Time
}

// SinkQueue is the durable queue of the message-bus sink (internal/sink, docs/sink.md). CloseWindow puts
// a sample in it (NewSample.Sink) in the transaction that records the sample; workers claim entries
// with a lease, so that one sample is published by one worker at a time, on one collector or on several
// sharing a PostgreSQL store. An entry leaves the queue only through CompleteSink, which the worker
// calls after the bus acknowledged every message of the sample.
type SinkQueue interface {
	// ClaimSink claims up to limit entries due at now for owner until now + lease, in the order they
	// were queued. An entry whose earlier claim ran out is claimable again.
	ClaimSink(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]SinkEntry, error)
	// RetrySink releases a claimed entry, due again at due, and records the failure (lastError is cut
	// to MaxWriteError bytes). It does nothing when owner no longer holds the claim.
	RetrySink(ctx context.Context, sampleID, owner string, due time.Time, lastError string) error
	// CompleteSink removes a published entry; false when owner no longer held the claim (the entry
	// stays, and is published again: at-least-once).
	CompleteSink(ctx context.Context, sampleID, owner string) (bool, error)
	// ReleaseSink ends owner's claims, as after a restart; it returns the number released.
	ReleaseSink(ctx context.Context, owner string) (int, error)
	// SinkStats describes the queue.
	SinkStats(ctx context.Context) (SinkStats, error)
}

// enqueueSinkTx queues a sample for the sink inside a transaction.
func (s *sqlStore) enqueueSinkTx(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO sink_outbox (sample_id, enqueued_at, next_attempt) VALUES (?, ?, ?)
		ON CONFLICT (sample_id) DO NOTHING`), id, ms(now), ms(now))
	if err != nil {
		return fmt.Errorf("queue for the sink: %w", err)
	}
	return nil
}

func (s *sqlStore) ClaimSink(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]SinkEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := s.db.QueryContext(ctx, s.q(`UPDATE sink_outbox SET claimed_by = ?, claimed_until = ?
		WHERE sample_id IN (SELECT sample_id FROM sink_outbox
			WHERE next_attempt <= ? AND claimed_until <= ?
			ORDER BY enqueued_at, sample_id LIMIT ?`+lock+`)
		RETURNING sample_id, attempts, enqueued_at`),
		owner, ms(now.Add(lease)), ms(now), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim sink queue: %w", err)
	}
	defer rows.Close()
	var out []SinkEntry
	for rows.Next() {
		var e SinkEntry
		var enq int64
		if err := rows.Scan(&e.SampleID, &e.Attempts, &enq); err != nil {
			return nil, fmt.Errorf("store: claim sink queue: %w", err)
		}
		e.Enqueued = fromMS(enq)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim sink queue: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Enqueued.Equal(out[j].Enqueued) {
			return out[i].Enqueued.Before(out[j].Enqueued)
		}
		return out[i].SampleID < out[j].SampleID
	})
	return out, nil
}

func (s *sqlStore) RetrySink(ctx context.Context, sampleID, owner string, due time.Time, lastError string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE sink_outbox SET next_attempt = ?, attempts = attempts + 1, last_error = ?,
			claimed_by = '', claimed_until = 0
		WHERE sample_id = ? AND claimed_by = ? AND claimed_until > 0`),
		ms(due), cutWriteError(lastError), sampleID, owner)
	if err != nil {
		return fmt.Errorf("store: retry sink entry: %w", err)
	}
	return nil
}

func (s *sqlStore) CompleteSink(ctx context.Context, sampleID, owner string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM sink_outbox WHERE sample_id = ? AND claimed_by = ? AND claimed_until > 0`),
		sampleID, owner)
	if err != nil {
		return false, fmt.Errorf("store: complete sink entry: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: complete sink entry: %w", err)
	}
	return n > 0, nil
}

func (s *sqlStore) ReleaseSink(ctx context.Context, owner string) (int, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE sink_outbox SET claimed_by = '', claimed_until = 0
		WHERE claimed_by = ? AND claimed_until > 0`), owner)
	if err != nil {
		return 0, fmt.Errorf("store: release sink queue: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (s *sqlStore) SinkStats(ctx context.Context) (SinkStats, error) {
	var st SinkStats
	var oldest int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(enqueued_at), 0) FROM sink_outbox`).
		Scan(&st.Queued, &oldest); err != nil {
		return st, fmt.Errorf("store: sink queue stats: %w", err)
	}
	if oldest > 0 {
		st.Oldest = fromMS(oldest)
	}
	return st, nil
}
