package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

func (s *sqlStore) EndWindow(ctx context.Context, w WindowRef, firstFrameTime float64) error {
	err := s.smallWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE windows SET end_marked = 1,
			first_frame_time = CASE WHEN ? > 0 THEN ? ELSE first_frame_time END
			WHERE host = ? AND window_start = ? AND state = 'open'`), firstFrameTime, firstFrameTime, w.Host, w.WindowStart)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: end window: %w", err)
	}
	return nil
}

func (s *sqlStore) DueWindows(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]WindowRef, error) {
	g := grace.Milliseconds()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT host, window_start, window_seconds FROM windows
		WHERE state = 'open' AND next_close_at <= ? AND (end_marked = 1 OR
			((window_start + window_seconds) * 1000 + ? <= ? AND last_batch_at + ? <= ?))
		ORDER BY window_start, host LIMIT ?`), ms(now), g, ms(now), g, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due windows: %w", err)
	}
	defer rows.Close()
	var out []WindowRef
	for rows.Next() {
		var w WindowRef
		var secs int64
		if err := rows.Scan(&w.Host, &w.WindowStart, &secs); err != nil {
			return nil, fmt.Errorf("store: due windows: %w", err)
		}
		w.WindowSeconds = uint32(secs)
		out = append(out, w)
	}
	return out, rows.Err()
}

// CloseWindow builds the window's next sample revision and records it, so that exactly one caller
// closes a window:
//
//   - On PostgreSQL the window row is locked (FOR UPDATE SKIP LOCKED) for the whole close. That blocks
//     only this window's writers, and a second collector skips the window instead of waiting.
//   - SQLite has one writer for the whole database, and building a sample (decode, order, encode
//     its content) takes milliseconds: holding the write lock meanwhile stalled every ingest
//     commit and capped closes near a hundred a second. There the window is read from a snapshot and
//     built without the lock, then recorded in a short write transaction that first checks the window is
//     unchanged (still open, same revision and first frame time, same batches); if it changed, the close
//     starts again, and after a few tries builds under the lock.
func (s *sqlStore) CloseWindow(ctx context.Context, w WindowRef, build func(WindowContent) (NewSample, error)) (*Sample, error) {
	if s.dialect == dialectSQLite {
		for attempt := 0; attempt < 3; attempt++ {
			x, done, err := s.closeOptimistic(ctx, w, build)
			if done || err != nil {
				return x, err
			}
		}
	}
	return s.closeLocked(ctx, w, build)
}

// windowSnapshot is an open window as read for closing.
type windowSnapshot struct {
	content WindowContent
	secs    int64
	lastID  int64 // the newest batch's id, 0 when none
	batches int   // window_batches rows read (content.Batches may also start with a base revision's flows)
}

// readWindow reads an open window and its batches; nil when the window is not open.
func (s *sqlStore) readWindow(ctx context.Context, q queryer, w WindowRef, lock string) (*windowSnapshot, error) {
	var snap windowSnapshot
	c := &snap.content
	var prunedRev int
	err := q.QueryRowContext(ctx, s.q(`SELECT window_seconds, revision, first_frame_time, pruned_revision, close_attempts,
		flows_dropped FROM windows WHERE host = ? AND window_start = ? AND state = 'open'`+lock), w.Host, w.WindowStart).Scan(
		&snap.secs, &c.Revision, &c.FirstFrameTime, &prunedRev, &c.CloseAttempts, &c.FlowsDropped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.WindowRef = WindowRef{Host: w.Host, WindowStart: w.WindowStart, WindowSeconds: uint32(snap.secs)}
	c.Revision++
	if prunedRev > 0 {
		// The window's batches were pruned when it was at revision prunedRev: that revision's sample,
		// built from all of them, stands in for them; the batches still stored all came later.
		c.Pruned = true
		var base []byte
		var id string
		err := q.QueryRowContext(ctx, s.q(`SELECT x.id, d.flows FROM samples x JOIN sample_data d ON d.id = x.id
			WHERE x.host = ? AND x.window_start = ? AND x.revision = ?`), w.Host, w.WindowStart, prunedRev).Scan(&id, &base)
		switch {
		case errors.Is(err, sql.ErrNoRows): // gone: the revision holds only the later batches
		case err != nil:
			return nil, err
		default:
			c.BaseRevision = prunedRev
			if len(base) > 0 {
				c.Batches = append(c.Batches, base)
			}
			// A sample stored in chunks: each chunk stands for a batch of its flows, in order.
			chunks, err := s.flowChunks(ctx, q, id, 0, -1)
			if err != nil {
				return nil, err
			}
			c.Batches = append(c.Batches, chunks...)
		}
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT id, flows FROM window_batches WHERE host = ? AND window_start = ? ORDER BY id`), w.Host, w.WindowStart)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&snap.lastID, &b); err != nil {
			return nil, err
		}
		c.Batches = append(c.Batches, b)
		snap.batches++
	}
	return &snap, rows.Err()
}

// closeOptimistic is SQLite's close: build from a snapshot, record if nothing changed. done is false
// when the window changed meanwhile and the close should start again.
func (s *sqlStore) closeOptimistic(ctx context.Context, w WindowRef, build func(WindowContent) (NewSample, error)) (x *Sample, done bool, err error) {
	rtx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // a deferred transaction: a snapshot, no write lock
	if err != nil {
		return nil, true, fmt.Errorf("store: close window: %w", err)
	}
	snap, err := s.readWindow(ctx, rtx, w, "")
	rtx.Rollback()
	if err != nil {
		return nil, true, fmt.Errorf("store: close window: %w", err)
	}
	if snap == nil {
		return nil, true, nil
	}
	ns, err := build(snap.content)
	if err != nil {
		return nil, true, fmt.Errorf("store: close window %s/%d: %w", w.Host, w.WindowStart, err)
	}
	// Record it, if the window is as it was read.
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, true, fmt.Errorf("store: close window: %w", err)
	}
	defer tx.Rollback()
	var rev int
	var first float64
	err = tx.QueryRowContext(ctx, s.q(`SELECT revision, first_frame_time FROM windows
		WHERE host = ? AND window_start = ? AND state = 'open'`), w.Host, w.WindowStart).Scan(&rev, &first)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, true, nil // closed by someone else meanwhile
	}
	if err != nil {
		return nil, true, fmt.Errorf("store: close window: %w", err)
	}
	var lastID, n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(id), 0), COUNT(*) FROM window_batches
		WHERE host = ? AND window_start = ?`), w.Host, w.WindowStart).Scan(&lastID, &n); err != nil {
		return nil, true, fmt.Errorf("store: close window: %w", err)
	}
	if rev+1 != snap.content.Revision || first != snap.content.FirstFrameTime || lastID != snap.lastID || n != int64(snap.batches) {
		return nil, false, nil
	}
	if x, err = s.recordSample(ctx, tx, snap, ns); err != nil {
		return nil, true, err
	}
	if err := tx.Commit(); err != nil {
		return nil, true, fmt.Errorf("store: close window: commit: %w", err)
	}
	return x, true, nil
}

// closeLocked builds and records the sample while holding the window (PostgreSQL: its row lock,
// skipped by other collectors; SQLite: the database's write lock).
func (s *sqlStore) closeLocked(ctx context.Context, w WindowRef, build func(WindowContent) (NewSample, error)) (*Sample, error) {
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	defer tx.Rollback()
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	snap, err := s.readWindow(ctx, tx, w, lock)
	if err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	if snap == nil {
		return nil, nil
	}
	ns, err := build(snap.content)
	if err != nil {
		return nil, fmt.Errorf("store: close window %s/%d: %w", w.Host, w.WindowStart, err)
	}
	x, err := s.recordSample(ctx, tx, snap, ns)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: close window: commit: %w", err)
	}
	return x, nil
}

// recordSample records a built sample and marks its window closed, in tx (the caller commits).
func (s *sqlStore) recordSample(ctx context.Context, tx *sql.Tx, snap *windowSnapshot, ns NewSample) (*Sample, error) {
	w, c, secs := snap.content.WindowRef, &snap.content, snap.secs
	now := time.Now()
	// A failed close left a placeholder (FailWindow): the sample written now takes its place.
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM samples WHERE id = ? AND state = ?`), ns.ID, string(StateWriteFailed)); err != nil {
		return nil, fmt.Errorf("store: close window: record sample: %w", err)
	}
	// The content and flows live in sample_data (migration 00003), the samples row keeps empty ones.
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO samples (id, host, window_start, window_seconds, revision,
		flow_count, bytes, state, file_name, content, flows, created_at, updated_at, flows_dropped)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), ns.ID, w.Host, w.WindowStart, secs, c.Revision,
		ns.FlowCount, ns.Bytes, string(ns.State), ns.FileName, []byte{}, []byte{}, ms(now), ms(now), c.FlowsDropped); err != nil {
		return nil, fmt.Errorf("store: close window: record sample: %w", err)
	}
	flows := ns.Flows
	if ns.FlowChunks != nil || flows == nil {
		flows = []byte{}
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sample_data (id, content, flows, content_sha256) VALUES (?, ?, ?, ?)`),
		ns.ID, ns.Content, flows, contentSum(ns.Content)); err != nil {
		return nil, fmt.Errorf("store: close window: record sample: %w", err)
	}
	for i, chunk := range ns.FlowChunks {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sample_flow_chunks (sample_id, chunk, flows) VALUES (?, ?, ?)`),
			ns.ID, i, chunk); err != nil {
			return nil, fmt.Errorf("store: close window: record sample flows: %w", err)
		}
	}
	if ns.Relay {
		if err := s.enqueueTx(ctx, tx, ns.ID, ns.FileName, now); err != nil {
			return nil, fmt.Errorf("store: close window: %w", err)
		}
	}
	if ns.Sink {
		if err := s.enqueueSinkTx(ctx, tx, ns.ID, now); err != nil {
			return nil, fmt.Errorf("store: close window: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE windows SET state = 'closed', end_marked = 0, revision = ?,
		close_attempts = 0, next_close_at = 0, close_error = ''
		WHERE host = ? AND window_start = ?`), c.Revision, w.Host, w.WindowStart); err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	return &Sample{ID: ns.ID, Host: w.Host, WindowStart: w.WindowStart, WindowSeconds: uint32(secs),
		Revision: c.Revision, FlowCount: ns.FlowCount, Bytes: ns.Bytes, State: ns.State, FileName: ns.FileName,
		FlowsDropped: c.FlowsDropped, Created: now.UTC().Truncate(time.Millisecond), Updated: now.UTC().Truncate(time.Millisecond)}, nil
}

func (s *sqlStore) FailWindow(ctx context.Context, f WindowFailure) (int, error) {
	msg := cutWriteError(f.Error)
	var attempts int
	err := s.runWrites(ctx, []*smallOp{{fn: func(ctx context.Context, tx *sql.Tx) error {
		lock := ""
		if s.dialect == dialectPostgres {
			lock = " FOR UPDATE"
		}
		var rev, secs int
		var flows int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT close_attempts, revision, window_seconds, flow_count FROM windows
			WHERE host = ? AND window_start = ? AND state = 'open'`+lock), f.Host, f.WindowStart).Scan(&attempts, &rev, &secs, &flows)
		if errors.Is(err, sql.ErrNoRows) {
			attempts = 0
			return nil
		}
		if err != nil {
			return err
		}
		attempts++
		next := f.At.Add(f.Backoff(attempts))
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE windows SET close_attempts = ?, next_close_at = ?, close_error = ?
			WHERE host = ? AND window_start = ?`), attempts, ms(next), msg, f.Host, f.WindowStart); err != nil {
			return err
		}
		id, file := f.Name(rev + 1)
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO samples (id, host, window_start, window_seconds, revision, flow_count,
			bytes, state, file_name, content, flows, created_at, updated_at, write_error)
			VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET write_error = excluded.write_error, updated_at = excluded.updated_at,
				flow_count = excluded.flow_count WHERE samples.state = excluded.state`),
			id, f.Host, f.WindowStart, secs, rev+1, flows, string(StateWriteFailed), file, []byte{}, []byte{},
			ms(f.At), ms(f.At), msg)
		return err
	}}})
	if err != nil {
		return 0, fmt.Errorf("store: fail window %s/%d: %w", f.Host, f.WindowStart, err)
	}
	return attempts, nil
}

func (s *sqlStore) SetSampleFile(ctx context.Context, id, writeErr string) (*Sample, error) {
	state := StateWritten
	if writeErr != "" {
		state = StateWriteFailed
	}
	err := s.smallWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE samples SET state = ?, write_error = ?, updated_at = ?
			WHERE id = ? AND state IN (?, ?)`), string(state), cutWriteError(writeErr), ms(time.Now()), id,
			string(StateClosed), string(StateWriteFailed))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: set sample file %s: %w", id, err)
	}
	return s.GetSample(ctx, id)
}

// cutWriteError makes a write error valid UTF-8 of at most MaxWriteError bytes.
func cutWriteError(msg string) string {
	msg = strings.ToValidUTF8(msg, "?")
	if len(msg) > MaxWriteError {
		msg = strings.ToValidUTF8(msg[:MaxWriteError], "")
	}
	return msg
}

func (s *sqlStore) CountOpenWindows(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM windows WHERE state = 'open'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count windows: %w", err)
	}
	return n, nil
}
