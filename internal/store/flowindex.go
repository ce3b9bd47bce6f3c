package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FlowIndex is the fleet search index (migration 00010, docs/search.md): per sample, one row per
// destination key summing its flows. package flowindex fills it from stored samples and queries it.
type FlowIndex interface {
	// UnindexedSamples lists up to limit samples that have flows and are not indexed yet, or were
	// indexed before their flow labels arrived (state enriched); oldest first. Old samples are listed
	// too: the index back-fills itself.
	UnindexedSamples(ctx context.Context, limit int) ([]IndexTodo, error)
	// IndexSample replaces the index rows of a sample with rows, and removes those of the window's
	// older revisions (a revision holds the whole window), in one transaction. A sample with a newer
	// revision gets no rows.
	IndexSample(ctx context.Context, id string, labeled bool, rows []FlowIndexRow, now time.Time) error
	// SearchFlowIndex calls fn with each row matching q, newest window first, until fn returns
	// ErrStopSearch (SearchFlowIndex then returns nil) or another error. Rows are read as they go: memory
	// does not grow with the result.
	SearchFlowIndex(ctx context.Context, q FlowIndexQuery, fn func(FlowIndexRow) error) error
}

// ErrStopSearch, returned by a SearchFlowIndex callback, ends the search without error.
var ErrStopSearch = errors.New("stop search")

// IndexTodo is a sample UnindexedSamples lists.
type IndexTodo struct {
	ID            string
	Host          string
	WindowStart   int64
	WindowSeconds uint32
	Revision      int
	FlowCount     int
	Enriched      bool // its flow labels are stored
}

// FlowIndexRow is one sample × destination key of the index.
type FlowIndexRow struct {
	SampleID    string
	Host        string
	WindowStart int64
	SrcKey      string // AddrKey of the source address
	DstKey      string // AddrKey of the destination address
	DstPort     int    // -1 for ICMP/ICMPv6
	DstName     string
	NameSource  string
	Protocol    string
	Category    string
	Flows       int64
	Packets     int64 // both ways
	Bytes       int64 // both ways
}

// FlowIndexQuery selects index rows; zero values select everything. The store applies the indexed
// bounds (one of DstName, NameSuffix, DstKeyLo/Hi or DstPort, and the window range); the caller checks
// the rest of its filter on each row.
type FlowIndexQuery struct {
	Hosts    []string
	DstName  string // exact name, lowercase
	NameRev  string // rows whose name_rev starts with this (a reversed "*." glob's fixed labels, with a trailing ".")
	DstKeyLo string // AddrKey range, both ends included
	DstKeyHi string
	DstPort  int // -1: any
	Since    int64
	Until    int64 // window start before; 0: no bound
}

// MaxIndexHosts bounds FlowIndexQuery.Hosts.
const MaxIndexHosts = 100

// ReverseName is the index's name_rev of a name: its labels reversed and each followed by ".", so
// that the names under a domain share a prefix ("a.example.com" → "com.example.a.").
func ReverseName(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	var b strings.Builder
	b.Grow(len(name) + 1)
	for i := len(labels) - 1; i >= 0; i-- {
		b.WriteString(labels[i])
		b.WriteByte('.')
	}
	return b.String()
}

func (s *sqlStore) UnindexedSamples(ctx context.Context, limit int) ([]IndexTodo, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT x.id, x.host, x.window_start, x.window_seconds, x.revision,
			x.flow_count, x.state
		FROM samples x LEFT JOIN flow_index_samples i ON i.sample_id = x.id
		WHERE x.state NOT IN ('open', 'closed', 'write_failed') AND x.flow_count > 0
			AND (i.sample_id IS NULL OR (i.labeled = 0 AND x.state = 'enriched'))
		ORDER BY x.created_at, x.id LIMIT ?`), max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("store: unindexed samples: %w", err)
	}
	defer rows.Close()
	var out []IndexTodo
	for rows.Next() {
		var t IndexTodo
		var state string
		if err := rows.Scan(&t.ID, &t.Host, &t.WindowStart, &t.WindowSeconds, &t.Revision, &t.FlowCount, &state); err != nil {
			return nil, fmt.Errorf("store: unindexed samples: %w", err)
		}
		t.Enriched = state == string(StateEnriched)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unindexed samples: %w", err)
	}
	return out, nil
}

const flowIndexCols = `sample_id, host, window_start, src_key, dst_key, dst_port, dst_name, name_rev, name_source,
	protocol, category, flows, packets, bytes`

func (s *sqlStore) IndexSample(ctx context.Context, id string, labeled bool, rows []FlowIndexRow, now time.Time) error {
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: index sample %s: %w", id, err)
	}
	defer tx.Rollback()
	var host string
	var ws int64
	var rev int
	err = tx.QueryRowContext(ctx, s.q(`SELECT host, window_start, revision FROM samples WHERE id = ?`), id).Scan(&host, &ws, &rev)
	if err != nil {
		return fmt.Errorf("store: index sample %s: %w", id, err)
	}
	// This sample's old rows, and those of the window's older revisions.
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM flow_index WHERE host = ? AND window_start = ? AND sample_id IN
			(SELECT id FROM samples WHERE host = ? AND window_start = ? AND revision <= ?)`), host, ws, host, ws, rev); err != nil {
		return fmt.Errorf("store: index sample %s: %w", id, err)
	}
	// A newer revision of the window (indexed or not) holds the whole window: this one adds no rows.
	var newer int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM samples WHERE host = ? AND window_start = ? AND revision > ?`),
		host, ws, rev).Scan(&newer); err != nil {
		return fmt.Errorf("store: index sample %s: %w", id, err)
	}
	if newer > 0 {
		rows = nil
	}
	const cols = 14
	for _, c := range chunks(len(rows), 60) {
		args := make([]any, 0, (c[1]-c[0])*cols)
		for _, r := range rows[c[0]:c[1]] {
			args = append(args, id, host, ws, r.SrcKey, r.DstKey, r.DstPort, r.DstName, ReverseName(r.DstName),
				r.NameSource, r.Protocol, r.Category, r.Flows, r.Packets, r.Bytes)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO flow_index (`+flowIndexCols+`) VALUES `+
			rowsOf(c[1]-c[0], cols)), args...); err != nil {
			return fmt.Errorf("store: index sample %s: %w", id, err)
		}
	}
	lab := 0
	if labeled {
		lab = 1
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO flow_index_samples (sample_id, labeled, indexed_at) VALUES (?, ?, ?)
			ON CONFLICT (sample_id) DO UPDATE SET labeled = excluded.labeled, indexed_at = excluded.indexed_at`),
		id, lab, ms(now)); err != nil {
		return fmt.Errorf("store: index sample %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: index sample %s: commit: %w", id, err)
	}
	return nil
}

func (s *sqlStore) SearchFlowIndex(ctx context.Context, q FlowIndexQuery, fn func(FlowIndexRow) error) error {
	if len(q.Hosts) > MaxIndexHosts {
		return fmt.Errorf("store: search flow index: %d hosts, at most %d", len(q.Hosts), MaxIndexHosts)
	}
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	switch {
	case q.DstName != "":
		add("name_rev = ?", ReverseName(q.DstName))
	case q.NameRev != "":
		// The names under the prefix: name_rev in [prefix, prefix with its last "." raised to "/").
		add("name_rev >= ? AND name_rev < ?", q.NameRev, q.NameRev[:len(q.NameRev)-1]+"/")
	}
	if q.DstKeyLo != "" {
		add("dst_key >= ? AND dst_key <= ?", q.DstKeyLo, q.DstKeyHi)
	}
	if q.DstPort >= 0 {
		add("dst_port = ?", q.DstPort)
	}
	if q.Since > 0 {
		add("window_start >= ?", q.Since)
	}
	if q.Until > 0 {
		add("window_start < ?", q.Until)
	}
	if len(q.Hosts) > 0 {
		add("host IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(q.Hosts)), ", ")+")", anys(q.Hosts)...)
	}
	query := "SELECT " + flowIndexCols + " FROM flow_index"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY window_start DESC, host, sample_id, dst_name, dst_key, dst_port, src_key, protocol, category"
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("store: search flow index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r FlowIndexRow
		var rev string
		if err := rows.Scan(&r.SampleID, &r.Host, &r.WindowStart, &r.SrcKey, &r.DstKey, &r.DstPort, &r.DstName, &rev,
			&r.NameSource, &r.Protocol, &r.Category, &r.Flows, &r.Packets, &r.Bytes); err != nil {
			return fmt.Errorf("store: search flow index: %w", err)
		}
		if err := fn(r); err != nil {
			if errors.Is(err, ErrStopSearch) {
				return nil
			}
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: search flow index: %w", err)
	}
	return nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
