package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// PruneRequest bounds one prune call: what may go, and how much of it one transaction deletes.
type PruneRequest struct {
	// Before: only windows that ended at or before this time (window start + window length <= Before)
	// are touched; PruneBatches also needs their last batch to have arrived before it.
	Before time.Time
	// Now is the caller's clock: a sample whose relay claim still runs at Now is not deleted under its
	// worker (PruneSamples).
	Now time.Time
	// MaxWindows bounds the windows of one call (default DefaultPruneWindows).
	MaxWindows int
	// MaxFlows stops adding windows to the call once their flows reach it (default DefaultPruneFlows);
	// a window is never split, so a call always takes at least one.
	MaxFlows int64
}

// The default bounds of one prune call (one transaction). A flow costs about 450 bytes in the store
// (docs/scale-out.md), so a call deletes some tens of megabytes at most.
const (
	DefaultPruneWindows = 256
	DefaultPruneFlows   = 100_000
)

func (r PruneRequest) limits() (int, int64) {
	w, f := r.MaxWindows, r.MaxFlows
	if w <= 0 {
		w = DefaultPruneWindows
	}
	if f <= 0 {
		f = DefaultPruneFlows
	}
	return w, f
}

// PrunedSample is a sample PruneSamples deleted: its .bf file is the caller's to remove.
type PrunedSample struct {
	ID          string
	Host        string
	WindowStart int64
	FileName    string
}

// PruneResult is what one prune call deleted.
type PruneResult struct {
	// Windows counts the windows deleted (PruneSamples) or whose batches were deleted (PruneBatches).
	// A call that returns no windows and no samples found nothing (more) to prune.
	Windows int
	// Batches counts the window_batches rows deleted.
	Batches int64
	// Samples are the samples deleted (PruneSamples).
	Samples []PrunedSample
	// Unrelayed counts deleted samples that were still waiting to be uploaded by the NetworkSage relay.
	Unrelayed int
}

// RetentionStats tells how far back the store reaches, after pruning.
type RetentionStats struct {
	// OldestSample is the window start of the oldest sample kept (zero when there is none).
	OldestSample time.Time
	// BatchesKeptSince: every closed window that still holds its batches received its last batch at or
	// after this time (zero when no closed window holds batches).
	BatchesKeptSince time.Time
}

// Pruner deletes old data in bounded transactions, so that a large backlog neither holds one huge
// transaction nor keeps batch commits out for long. Callers loop until a call finds nothing. Several
// collectors may prune one PostgreSQL store at once: each call locks the windows it takes (SKIP LOCKED).
//
// The dedup marks (streams) are never pruned: a replayed batch must be recognised however old it is.
type Pruner interface {
	// PruneSamples deletes, for up to one chunk of closed windows that ended at or before r.Before,
	// everything the store holds of them: samples (metadata, content, flows, relay outbox entries),
	// batches and the window rows; and samples older than r.Before whose window row is gone. Windows
	// still open (a late batch reopened them) wait until they close; a window whose sample a relay
	// worker holds a claim on waits until the claim ends. The deleted samples are returned so that the
	// caller can remove their files.
	PruneSamples(ctx context.Context, r PruneRequest) (PruneResult, error)
	// PruneBatches deletes the batches of up to one chunk of closed windows that ended, and received
	// their last batch, before r.Before; the windows are marked pruned at their current revision. A
	// late batch that reopens such a window closes into a revision built from that revision's flows
	// plus the batches received since (WindowContent.Pruned).
	PruneBatches(ctx context.Context, r PruneRequest) (PruneResult, error)
	// RetentionStats reports the oldest data kept.
	RetentionStats(ctx context.Context) (RetentionStats, error)
}

type windowKey struct {
	host  string
	start int64
}

// keyArgs returns the (host, window_start) rows of keys as arguments for rowsOf(len(keys), 2).
func keyArgs(keys []windowKey) []any {
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k.host, k.start)
	}
	return args
}

// takeWindows reads candidate windows (host, window_start, flow_count) and keeps the leading ones
// whose flows fit maxFlows (at least one).
func takeWindows(rows *sql.Rows, maxFlows int64) ([]windowKey, error) {
	defer rows.Close()
	var keys []windowKey
	var flows int64
	for rows.Next() {
		var k windowKey
		var n int64
		if err := rows.Scan(&k.host, &k.start, &n); err != nil {
			return nil, err
		}
		if len(keys) > 0 && flows+n > maxFlows {
			break
		}
		flows += n
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// beginPrune begins a pruning transaction and returns the clause that locks the rows it selects: on
// PostgreSQL a window locked by a commit that is reopening it, or by another collector's pruner, is
// skipped (FOR UPDATE SKIP LOCKED); SQLite has one writer at a time.
func (s *sqlStore) beginPrune(ctx context.Context) (*sql.Tx, string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, "", err
	}
	if s.dialect == dialectPostgres {
		return tx, " FOR UPDATE SKIP LOCKED", nil
	}
	return tx, "", nil
}

func (s *sqlStore) PruneSamples(ctx context.Context, r PruneRequest) (PruneResult, error) {
	var res PruneResult
	maxWindows, maxFlows := r.limits()
	fail := func(err error) (PruneResult, error) {
		return PruneResult{}, fmt.Errorf("store: prune samples: %w", err)
	}
	beforeSec, beforeMS, nowMS := r.Before.Unix(), ms(r.Before), ms(r.Now)
	defer s.lockWrites()()
	tx, lock, err := s.beginPrune(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	// The candidates are found through windows_start, in its order: window_start <= beforeSec is
	// implied by the end test (windows are at least a second long) and bounds the index range. "state
	// <> 'open'" (closed or pruned) is written so that SQLite does not pick the state index instead,
	// which would read every closed window and sort them.
	rows, err := tx.QueryContext(ctx, s.q(`SELECT host, window_start, flow_count FROM windows w
		WHERE state <> 'open' AND window_start <= ? AND (window_start + window_seconds) * 1000 <= ?
			AND NOT EXISTS (SELECT 1 FROM samples x JOIN relay_outbox o ON o.sample_id = x.id
				WHERE x.host = w.host AND x.window_start = w.window_start AND o.claimed_until > ?)
		ORDER BY window_start, host LIMIT ?`+lock), beforeSec, beforeMS, nowMS, maxWindows)
	if err != nil {
		return fail(err)
	}
	keys, err := takeWindows(rows, maxFlows)
	if err != nil {
		return fail(err)
	}
	var samples []PrunedSample
	for _, c := range chunks(len(keys), 400) {
		ks := keys[c[0]:c[1]]
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, host, window_start, file_name FROM samples
			WHERE (host, window_start) IN (`+rowsOf(len(ks), 2)+`) ORDER BY window_start, id`), keyArgs(ks)...)
		if err != nil {
			return fail(err)
		}
		got, err := scanPruned(rows)
		if err != nil {
			return fail(err)
		}
		samples = append(samples, got...)
	}
	// Samples whose window row is gone (none is made that way, but retention must not depend on it).
	if len(keys) < maxWindows {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, host, window_start, file_name FROM samples x
			WHERE window_start <= ? AND (window_start + window_seconds) * 1000 <= ?
				AND NOT EXISTS (SELECT 1 FROM windows w WHERE w.host = x.host AND w.window_start = x.window_start)
				AND NOT EXISTS (SELECT 1 FROM relay_outbox o WHERE o.sample_id = x.id AND o.claimed_until > ?)
			ORDER BY window_start, id LIMIT ?`), beforeSec, beforeMS, nowMS, maxWindows-len(keys))
		if err != nil {
			return fail(err)
		}
		got, err := scanPruned(rows)
		if err != nil {
			return fail(err)
		}
		samples = append(samples, got...)
	}
	for _, c := range chunks(len(samples), 400) {
		ids := make([]any, 0, c[1]-c[0])
		for _, x := range samples[c[0]:c[1]] {
			ids = append(ids, x.ID)
		}
		in := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
		n, err := execCount(ctx, tx, s.q(`DELETE FROM relay_outbox WHERE phase = 'upload' AND sample_id IN (`+in+`)`), ids...)
		if err != nil {
			return fail(err)
		}
		res.Unrelayed += int(n)
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM relay_outbox WHERE sample_id IN (`+in+`)`), ids...); err != nil {
			return fail(err) // the poll phase: uploaded, waiting to hear that NetworkSage processed it
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sink_outbox WHERE sample_id IN (`+in+`)`), ids...); err != nil {
			return fail(err) // not published yet: retention wins, as for the relay
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sample_data WHERE id IN (`+in+`)`), ids...); err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sample_flow_chunks WHERE sample_id IN (`+in+`)`), ids...); err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sample_flow_labels WHERE sample_id IN (`+in+`)`), ids...); err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM samples WHERE id IN (`+in+`)`), ids...); err != nil {
			return fail(err)
		}
	}
	if res.Batches, err = s.deleteBatches(ctx, tx, keys, `DELETE FROM windows WHERE (host, window_start) IN (%s)`); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	res.Windows, res.Samples = len(keys), samples
	return res, nil
}

func scanPruned(rows *sql.Rows) ([]PrunedSample, error) {
	defer rows.Close()
	var out []PrunedSample
	for rows.Next() {
		var x PrunedSample
		if err := rows.Scan(&x.ID, &x.Host, &x.WindowStart, &x.FileName); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// deleteBatches deletes the batches of the windows keys, a chunk at a time, and runs then (a statement
// whose %s stands for the chunk's (host, window_start) rows) on each chunk. It returns the batches deleted.
func (s *sqlStore) deleteBatches(ctx context.Context, tx *sql.Tx, keys []windowKey, then string) (int64, error) {
	var deleted int64
	for _, c := range chunks(len(keys), 400) {
		ks := keys[c[0]:c[1]]
		in := rowsOf(len(ks), 2)
		n, err := execCount(ctx, tx, s.q(`DELETE FROM window_batches WHERE (host, window_start) IN (`+in+`)`), keyArgs(ks)...)
		if err != nil {
			return deleted, err
		}
		deleted += n
		if _, err := tx.ExecContext(ctx, s.q(fmt.Sprintf(then, in)), keyArgs(ks)...); err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

func execCount(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqlStore) PruneBatches(ctx context.Context, r PruneRequest) (PruneResult, error) {
	var res PruneResult
	maxWindows, maxFlows := r.limits()
	fail := func(err error) (PruneResult, error) {
		return PruneResult{}, fmt.Errorf("store: prune batches: %w", err)
	}
	defer s.lockWrites()()
	tx, lock, err := s.beginPrune(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	// In the order of windows_open (state, last_batch_at), so that no call sorts the backlog.
	rows, err := tx.QueryContext(ctx, s.q(`SELECT host, window_start, flow_count FROM windows
		WHERE state = 'closed' AND last_batch_at < ? AND (window_start + window_seconds) * 1000 <= ?
		ORDER BY last_batch_at LIMIT ?`+lock), ms(r.Before), ms(r.Before), maxWindows)
	if err != nil {
		return fail(err)
	}
	keys, err := takeWindows(rows, maxFlows)
	if err != nil {
		return fail(err)
	}
	// Only batches this transaction can see are deleted: on PostgreSQL a late batch being committed now
	// (its window row not yet reached) survives, and reopens the window after this commit.
	if res.Batches, err = s.deleteBatches(ctx, tx, keys, `UPDATE windows SET state = 'pruned', pruned_revision = revision
		WHERE state = 'closed' AND (host, window_start) IN (%s)`); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	res.Windows = len(keys)
	return res, nil
}

func (s *sqlStore) RetentionStats(ctx context.Context) (RetentionStats, error) {
	var st RetentionStats
	var oldest, kept sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(window_start) FROM samples`).Scan(&oldest); err != nil {
		return st, fmt.Errorf("store: retention stats: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(last_batch_at) FROM windows WHERE state = 'closed'`).Scan(&kept); err != nil {
		return st, fmt.Errorf("store: retention stats: %w", err)
	}
	if oldest.Valid {
		st.OldestSample = time.Unix(oldest.Int64, 0).UTC()
	}
	if kept.Valid {
		st.BatchesKeptSince = fromMS(kept.Int64)
	}
	return st, nil
}
