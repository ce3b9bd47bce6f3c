package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // SQLite driver "sqlite"
)

//go:embed migrations
var migrations embed.FS

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// sqlStore implements Store on database/sql for both dialects; queries are written with '?' and
// rebound to '$n' for PostgreSQL.
type sqlStore struct {
	db      *sql.DB
	dialect dialect
	// writeMu queues this process's big SQLite write transactions (batch commits, window closes) in Go.
	// SQLite lets one writer in at a time and makes the others poll with growing sleeps (its busy
	// handler), which under load wasted milliseconds at every hand-over; a mutex hands over at once.
	writeMu sync.Mutex
	small   smallWrites
	created bool // Open found no migrations applied: a new store (Stats)
}

// smallWrites gathers small SQLite writes (window-end marks, host contacts) into shared transactions.
// A fleet's sensors all end their windows at the same moment: a thousand one-row transactions, each
// with its own fsync, each polling for the write lock while holding a pooled connection, starved the
// batch commits and window closes of connections for seconds.
type smallWrites struct {
	mu      sync.Mutex
	queue   []*smallOp
	leading bool // a caller is running the queue
}

type smallOp struct {
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// smallWrite runs fn in a transaction. On SQLite the transaction is shared with the small writes queued
// meanwhile: the first caller to find no one running the queue runs it (as long as it fills) for
// everyone. An error in a shared transaction makes each of its writes run again alone.
func (s *sqlStore) smallWrite(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.dialect != dialectSQLite {
		return s.runWrites(ctx, []*smallOp{{fn: fn}})
	}
	op := &smallOp{fn: fn, done: make(chan error, 1)}
	s.small.mu.Lock()
	s.small.queue = append(s.small.queue, op)
	lead := !s.small.leading
	s.small.leading = true
	s.small.mu.Unlock()
	if lead {
		for {
			s.small.mu.Lock()
			ops := s.small.queue
			s.small.queue = nil
			if len(ops) == 0 {
				s.small.leading = false
				s.small.mu.Unlock()
				break
			}
			s.small.mu.Unlock()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if err := s.runWrites(wctx, ops); err != nil {
				for _, o := range ops {
					o.done <- s.runWrites(wctx, []*smallOp{o})
				}
			} else {
				for _, o := range ops {
					o.done <- nil
				}
			}
			cancel()
		}
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runWrites runs ops in one transaction.
func (s *sqlStore) runWrites(ctx context.Context, ops []*smallOp) error {
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, o := range ops {
		if err := o.fn(ctx, tx); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// lockWrites takes writeMu on SQLite; it returns the unlock.
func (s *sqlStore) lockWrites() func() {
	if s.dialect != dialectSQLite {
		return func() {}
	}
	s.writeMu.Lock()
	return s.writeMu.Unlock
}

var _ Store = (*sqlStore)(nil)

// Open opens (and migrates) the store named by dsn: "postgres://…" or "postgresql://…" for
// PostgreSQL, otherwise a SQLite database file path (optionally prefixed "sqlite://").
func Open(ctx context.Context, dsn string) (Store, error) {
	s := &sqlStore{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = dialectPostgres
		s.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		// Keep the connections open: database/sql keeps only two idle ones by default, so a collector
		// under load opened and closed PostgreSQL connections (a server process each) all the time.
		s.db.SetMaxOpenConns(32)
		s.db.SetMaxIdleConns(32)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, errors.New("store: empty database path")
		}
		q := "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
		s.db, err = sql.Open("sqlite", "file:"+path+"?"+q)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
		}
		// One writer at a time is SQLite's model; more connections let reads (queries, and the snapshots
		// windows are built from) run beside it.
		s.db.SetMaxOpenConns(8)
		s.db.SetMaxIdleConns(8)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	if err := s.checkIntegrity(ctx, strings.TrimPrefix(dsn, "sqlite://")); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqlStore) migrate(ctx context.Context) error {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	if s.dialect == dialectPostgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	var opts []goose.ProviderOption
	if s.dialect == dialectPostgres {
		// Collectors started together must not run the migrations at the same time.
		opts = append(opts, goose.WithSessionLocker(pgMigrationLock{}))
	}
	p, err := goose.NewProvider(gd, s.db, sub, opts...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if v, err := p.GetDBVersion(ctx); err == nil {
		s.created = v == 0
	}
	for attempt := 1; ; attempt++ {
		_, err := p.Up(ctx)
		if err == nil {
			return nil
		}
		// Two processes opening a new SQLite file together both see it unmigrated; the loser's
		// migration fails (and rolls back) on the tables the winner made. Looking again finds them.
		if s.dialect != dialectSQLite || attempt == 5 || ctx.Err() != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

// pgMigrationLock serialises the migrations of collectors sharing a PostgreSQL database with a
// session-level advisory lock, waited for (not polled) until the context ends.
type pgMigrationLock struct{}

// pgMigrationLockID is the advisory lock key of FlowFleet's migrations (an arbitrary constant).
const pgMigrationLockID = 0x466c6f77466c74 // "FlowFlt"

func (pgMigrationLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(pgMigrationLockID)); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	return nil
}

func (pgMigrationLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", int64(pgMigrationLockID)); err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	return nil
}

// q rebinds a query's '?' placeholders for the dialect.
func (s *sqlStore) q(query string) string {
	if s.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func (s *sqlStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *sqlStore) Close() error { return s.db.Close() }

// SaveBatches stores a group of batches in one transaction. Every step is a few multi-row statements
// (a round trip each on PostgreSQL, whatever the group's size), and shared rows are locked in one global
// order (streams, then windows, then hosts, each sorted) so that concurrent transactions of several
// collectors cannot deadlock:
//
//  1. the dedup marks of the group's streams: made if missing, then read and locked (FOR UPDATE on
//     PostgreSQL; SQLite has one writer), so that two collectors holding the same replayed batch
//     store it once;
//  2. the new marks, after deciding which batches are at or below them (duplicates);
//  3. the batches' parts, in arrival order;
//  4. the windows they touch, one upsert row each;
//  5. the hosts' counters, one upsert row each.
func (s *sqlStore) SaveBatches(ctx context.Context, batches []Batch) ([]Outcome, error) {
	out := make([]Outcome, len(batches))
	if len(batches) == 0 {
		return out, nil
	}
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: save batches: %w", err)
	}
	defer tx.Rollback()
	fail := func(err error) ([]Outcome, error) { return nil, fmt.Errorf("store: save batches: %w", err) }

	// 1. The streams' marks.
	type streamKey struct{ host, stream string }
	order := make([]int, len(batches))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := &batches[order[a]], &batches[order[b]]
		if x.Host != y.Host {
			return x.Host < y.Host
		}
		if x.StreamID != y.StreamID {
			return x.StreamID < y.StreamID
		}
		return x.Seq < y.Seq
	})
	var keys []streamKey
	for _, i := range order {
		k := streamKey{batches[i].Host, batches[i].StreamID}
		if len(keys) == 0 || keys[len(keys)-1] != k {
			keys = append(keys, k)
		}
	}
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE"
	}
	marks := make(map[streamKey]*seqMarks, len(keys))
	for _, chunk := range chunks(len(keys), 1000) {
		ks := keys[chunk[0]:chunk[1]]
		args := make([]any, 0, 3*len(ks))
		for _, k := range ks {
			args = append(args, k.host, k.stream, int64(0))
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO streams (host, stream_id, hwm) VALUES `+rowsOf(len(ks), 3)+`
			ON CONFLICT (host, stream_id) DO NOTHING`), args...); err != nil {
			return fail(err)
		}
		args = args[:0]
		for _, k := range ks {
			args = append(args, k.host, k.stream)
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT host, stream_id, hwm, recent FROM streams WHERE (host, stream_id) IN (`+
			rowsOf(len(ks), 2)+`) ORDER BY host, stream_id`+lock), args...)
		if err != nil {
			return fail(err)
		}
		for rows.Next() {
			var k streamKey
			var hwm int64
			var recent []byte
			if err := rows.Scan(&k.host, &k.stream, &hwm, &recent); err != nil {
				rows.Close()
				return fail(err)
			}
			m := decodeSeqMarks(hwm, recent)
			marks[k] = &m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(err)
		}
	}

	// 2. Duplicates and refusals, and the new marks.
	moved := map[streamKey]bool{}
	for _, i := range order {
		b := &batches[i]
		k := streamKey{b.Host, b.StreamID}
		m := marks[k]
		if m == nil {
			m = &seqMarks{}
			marks[k] = m
		}
		switch {
		case b.Seq == 0 || b.Seq > MaxSeq:
			out[i] = OutOfOrder
		case b.Seq <= m.hwm && m.stored(b.Seq):
			out[i] = Duplicate // stored before
		case b.Seq <= m.hwm:
			out[i] = OutOfOrder // below the mark and never stored (or too old to tell)
		default:
			m.add(b.Seq)
			moved[k] = true
		}
	}
	var movedKeys []streamKey
	for _, k := range keys {
		if moved[k] {
			movedKeys = append(movedKeys, k)
		}
	}
	for _, chunk := range chunks(len(movedKeys), 1000) {
		ks := movedKeys[chunk[0]:chunk[1]]
		args := make([]any, 0, 4*len(ks))
		for _, k := range ks {
			args = append(args, k.host, k.stream, int64(marks[k].hwm), marks[k].encode())
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO streams (host, stream_id, hwm, recent) VALUES `+rowsOf(len(ks), 4)+`
			ON CONFLICT (host, stream_id) DO UPDATE SET hwm = excluded.hwm, recent = excluded.recent`), args...); err != nil {
			return fail(err)
		}
	}

	// 3. The parts, in arrival order, each cut to what its window's bound still takes.
	type windowAdd struct {
		secs           uint32
		flows, dropped int
		bytes          int64
		last           int64
	}
	type hostAdd struct {
		flows, drops, flowDrops uint64
		last                    int64
	}
	windows := map[windowKey]*windowAdd{}
	hosts := map[string]*hostAdd{}
	held, err := s.windowTotals(ctx, tx, batches, out)
	if err != nil {
		return fail(err)
	}
	var parts []any
	for i := range batches {
		if out[i] != Stored {
			continue
		}
		b := &batches[i]
		at := ms(b.Received)
		h := hosts[b.Host]
		if h == nil {
			h = &hostAdd{}
			hosts[b.Host] = h
		}
		h.drops = satAdd(h.drops, b.Drops)
		h.flowDrops = satAdd(h.flowDrops, b.FlowDrops)
		h.last = max(h.last, at)
		for j := range b.Parts {
			p := &b.Parts[j]
			k := windowKey{b.Host, p.WindowStart}
			w := windows[k]
			if w == nil {
				w = &windowAdd{secs: p.WindowSeconds}
				windows[k] = w
			}
			h.flows = satAdd(h.flows, uint64(max(p.FlowCount, 0)))
			w.last = max(w.last, at)
			t := held[k]
			flows, n := fitPart(p, b.Limits, t)
			p.Dropped, p.Overflowed = p.FlowCount-n, p.FlowCount > n && t.dropped == 0
			t.flows, t.bytes, t.dropped = t.flows+int64(n), t.bytes+int64(len(flows)), t.dropped+int64(p.Dropped)
			held[k] = t
			w.flows += n
			w.bytes += int64(len(flows))
			w.dropped += p.Dropped
			if n > 0 {
				parts = append(parts, b.Host, p.WindowStart, b.StreamID, int64(b.Seq), n, flows, at)
			}
		}
	}
	for _, chunk := range chunks(len(parts)/7, 500) {
		n := chunk[1] - chunk[0]
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO window_batches
			(host, window_start, stream_id, seq, flow_count, flows, received_at) VALUES `+rowsOf(n, 7)),
			parts[7*chunk[0]:7*chunk[1]]...); err != nil {
			return fail(err)
		}
	}

	// 4. The windows.
	wkeys := make([]windowKey, 0, len(windows))
	for k := range windows {
		wkeys = append(wkeys, k)
	}
	sort.Slice(wkeys, func(a, b int) bool {
		if wkeys[a].host != wkeys[b].host {
			return wkeys[a].host < wkeys[b].host
		}
		return wkeys[a].start < wkeys[b].start
	})
	for _, chunk := range chunks(len(wkeys), 1000) {
		ks := wkeys[chunk[0]:chunk[1]]
		args := make([]any, 0, 7*len(ks))
		for _, k := range ks {
			w := windows[k]
			args = append(args, k.host, k.start, int64(w.secs), w.last, w.flows, w.bytes, w.dropped)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO windows
			(host, window_start, window_seconds, last_batch_at, flow_count, flow_bytes, flows_dropped, state, end_marked, revision)
			VALUES `+rowsOfWith(len(ks), 7, ", 'open', 0, 0")+`
			ON CONFLICT (host, window_start) DO UPDATE SET
				end_marked = CASE WHEN windows.state = 'open' THEN windows.end_marked ELSE 0 END,
				state = 'open',
				last_batch_at = excluded.last_batch_at,
				flow_count = windows.flow_count + excluded.flow_count,
				flow_bytes = windows.flow_bytes + excluded.flow_bytes,
				flows_dropped = windows.flows_dropped + excluded.flows_dropped`), args...); err != nil {
			return fail(err)
		}
	}

	// 5. The hosts' counters (a host a batch names is made if it is missing).
	names := make([]string, 0, len(hosts))
	for name := range hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, chunk := range chunks(len(names), 1000) {
		ns := names[chunk[0]:chunk[1]]
		args := make([]any, 0, 6*len(ns))
		for _, name := range ns {
			h := hosts[name]
			args = append(args, name, h.last, h.last, int64(h.flows), int64(h.drops), int64(h.flowDrops))
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO hosts (name, first_contact, last_contact, flows_received, drops_reported, flows_dropped)
			VALUES `+rowsOf(len(ns), 6)+`
			ON CONFLICT (name) DO UPDATE SET
				flows_received = `+satSum("hosts.flows_received", "excluded.flows_received")+`,
				drops_reported = `+satSum("hosts.drops_reported", "excluded.drops_reported")+`,
				flows_dropped = `+satSum("hosts.flows_dropped", "excluded.flows_dropped")+`,
				last_contact = CASE WHEN excluded.last_contact > hosts.last_contact THEN excluded.last_contact ELSE hosts.last_contact END`),
			args...); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: save batches: commit: %w", err)
	}
	return out, nil
}

// satSum is the SQL of a + b for two non-negative counters, saturating at 2^63−1: a plain sum would
// overflow (an error on PostgreSQL, a REAL on SQLite that no reader can scan as an integer).
func satSum(a, b string) string {
	return "CASE WHEN " + a + " > 9223372036854775807 - " + b + " THEN 9223372036854775807 ELSE " + a + " + " + b + " END"
}

// windowTotal is what a window holds so far, for its bound (Batch.Limits).
type windowTotal struct{ flows, bytes, dropped int64 }

// windowTotals reads what the windows of the batches that carry limits hold already. On PostgreSQL the
// rows are locked (in key order, after the streams: the global order SaveBatches keeps), so that two
// collectors cannot both fill the same window's last room; a window neither has made yet can still
// take both their parts, once.
func (s *sqlStore) windowTotals(ctx context.Context, tx *sql.Tx, batches []Batch, out []Outcome) (map[windowKey]windowTotal, error) {
	held := map[windowKey]windowTotal{}
	var keys []windowKey
	for i := range batches {
		if out[i] != Stored || batches[i].Limits == (WindowLimits{}) {
			continue
		}
		for _, p := range batches[i].Parts {
			k := windowKey{batches[i].Host, p.WindowStart}
			if _, ok := held[k]; !ok {
				held[k] = windowTotal{}
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].host != keys[b].host {
			return keys[a].host < keys[b].host
		}
		return keys[a].start < keys[b].start
	})
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE"
	}
	for _, c := range chunks(len(keys), 500) {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT host, window_start, flow_count, flow_bytes, flows_dropped FROM windows
			WHERE (host, window_start) IN (`+rowsOf(c[1]-c[0], 2)+`) ORDER BY host, window_start`+lock), keyArgs(keys[c[0]:c[1]])...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k windowKey
			var t windowTotal
			if err := rows.Scan(&k.host, &k.start, &t.flows, &t.bytes, &t.dropped); err != nil {
				rows.Close()
				return nil, err
			}
			held[k] = t
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return held, nil
}

// fitPart returns the flows of p that fit its window's bound given what the window holds (t), and how
// many they are: all of them when they fit, else the longest prefix that does (with p.FlowEnds) or
// none. Once a window has dropped a flow it takes no more, so that a sample never holds a later
// flow without an earlier one.
func fitPart(p *BatchPart, l WindowLimits, t windowTotal) ([]byte, int) {
	roomFlows, roomBytes := int64(p.FlowCount), int64(len(p.Flows))
	if l.MaxFlows > 0 {
		roomFlows = l.MaxFlows - t.flows
	}
	if l.MaxBytes > 0 {
		roomBytes = l.MaxBytes - t.bytes
	}
	if t.dropped == 0 && int64(p.FlowCount) <= roomFlows && int64(len(p.Flows)) <= roomBytes {
		return p.Flows, p.FlowCount
	}
	if t.dropped > 0 || len(p.FlowEnds) != p.FlowCount || roomFlows <= 0 || roomBytes <= 0 {
		return nil, 0
	}
	n := int(min(roomFlows, int64(p.FlowCount)))
	for n > 0 && int64(p.FlowEnds[n-1]) > roomBytes {
		n--
	}
	if n == 0 {
		return nil, 0
	}
	return p.Flows[:p.FlowEnds[n-1]], n
}

// chunks splits n items into [from, to) ranges of at most size.
func chunks(n, size int) [][2]int {
	var out [][2]int
	for i := 0; i < n; i += size {
		out = append(out, [2]int{i, min(i+size, n)})
	}
	return out
}

// rowsOf returns n parenthesised rows of cols placeholders: "(?, ?), (?, ?)".
func rowsOf(n, cols int) string { return rowsOfWith(n, cols, "") }

// rowsOfWith is rowsOf with suffix (constant columns) added inside each row.
func rowsOfWith(n, cols int, suffix string) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?" + suffix + ")"
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

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
//   - SQLite has one writer for the whole database, and building a sample (decode, order, encode, write
//     and sync the .bf file) takes milliseconds: holding the write lock meanwhile stalled every ingest
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

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
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
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE windows SET state = 'closed', end_marked = 0, revision = ?,
		close_attempts = 0, next_close_at = 0, close_error = ''
		WHERE host = ? AND window_start = ?`), c.Revision, w.Host, w.WindowStart); err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	return &Sample{ID: ns.ID, Host: w.Host, WindowStart: w.WindowStart, WindowSeconds: uint32(secs),
		Revision: c.Revision, FlowCount: ns.FlowCount, Bytes: ns.Bytes, State: ns.State, FileName: ns.FileName,
		FlowsDropped: c.FlowsDropped, Created: now.UTC().Truncate(time.Millisecond), Updated: now.UTC().Truncate(time.Millisecond)}, nil
}

const sampleCols = `id, host, window_start, window_seconds, revision, flow_count, bytes, state, file_name,
	remote_id, relay_error, created_at, updated_at, write_error, flows_dropped`

func scanSample(sc interface{ Scan(...any) error }) (*Sample, error) {
	var x Sample
	var secs, created, updated int64
	var state string
	if err := sc.Scan(&x.ID, &x.Host, &x.WindowStart, &secs, &x.Revision, &x.FlowCount, &x.Bytes, &state,
		&x.FileName, &x.RemoteID, &x.RelayError, &created, &updated, &x.WriteError, &x.FlowsDropped); err != nil {
		return nil, err
	}
	x.WindowSeconds = uint32(secs)
	x.State = SampleState(state)
	x.Created, x.Updated = fromMS(created), fromMS(updated)
	return &x, nil
}

// MaxPageSize bounds ListSamples pages.
const MaxPageSize = 1000

func (s *sqlStore) ListSamples(ctx context.Context, f SampleFilter) ([]Sample, string, error) {
	size := f.PageSize
	if size <= 0 {
		size = 50
	}
	if size > MaxPageSize {
		size = MaxPageSize
	}
	var where []string
	var args []any
	if f.Host != "" {
		where = append(where, "host = ?")
		args = append(args, f.Host)
	}
	if !f.Since.IsZero() {
		where = append(where, "window_start >= ?")
		args = append(args, f.Since.Unix())
	}
	if !f.Until.IsZero() {
		where = append(where, "window_start < ?")
		args = append(args, f.Until.Unix())
	}
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if f.FileName != "" {
		where = append(where, "file_name = ?")
		args = append(args, f.FileName)
	}
	if f.PageToken != "" {
		start, id, err := decodeToken(f.PageToken)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(window_start < ? OR (window_start = ? AND id < ?))")
		args = append(args, start, start, id)
	}
	query := "SELECT " + sampleCols + " FROM samples"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY window_start DESC, id DESC LIMIT ?"
	args = append(args, size+1)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list samples: %w", err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		x, err := scanSample(rows)
		if err != nil {
			return nil, "", fmt.Errorf("store: list samples: %w", err)
		}
		out = append(out, *x)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list samples: %w", err)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		last := out[len(out)-1]
		next = encodeToken(last.WindowStart, last.ID)
	}
	return out, next, nil
}

// ErrBadToken reports a page token this store did not make.
var ErrBadToken = errors.New("invalid page token")

func encodeToken(start int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(start, 10) + ":" + id))
}

// tokenKey reports a key a page token may carry: a sample id or host name, 1–max characters of
// [A-Za-z0-9._-], like every id and name the collector issues.
func tokenKey(k string, max int) bool {
	if k == "" || len(k) > max {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func decodeToken(t string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, "", ErrBadToken
	}
	head, id, ok := strings.Cut(string(b), ":")
	if !ok {
		return 0, "", ErrBadToken
	}
	start, err := strconv.ParseInt(head, 10, 64)
	if err != nil || encodeToken(start, id) != t || !tokenKey(id, 300) {
		return 0, "", ErrBadToken // only the exact text encodeToken makes ("+1", padding, "007" are not)
	}
	return start, id, nil
}

func (s *sqlStore) GetSample(ctx context.Context, id string) (*Sample, error) {
	x, err := scanSample(s.db.QueryRowContext(ctx, s.q("SELECT "+sampleCols+" FROM samples WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get sample: %w", err)
	}
	return x, nil
}

func (s *sqlStore) blob(ctx context.Context, col, id string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, s.q("SELECT "+col+" FROM sample_data WHERE id = ?"), id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: sample %s: %w", col, err)
	}
	return b, nil
}

func (s *sqlStore) SampleFlows(ctx context.Context, id string) ([]byte, error) {
	b, err := s.blob(ctx, "flows", id)
	if err != nil || len(b) > 0 {
		return b, err
	}
	chunks, err := s.flowChunks(ctx, s.db, id, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("store: sample flows: %w", err)
	}
	for _, c := range chunks {
		b = append(b, c...)
	}
	return b, nil
}

func (s *sqlStore) SampleFlowChunks(ctx context.Context, id string, from, to int) ([][]byte, error) {
	if from < 0 || to <= from {
		return nil, nil
	}
	chunks, err := s.flowChunks(ctx, s.db, id, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: sample flow chunks: %w", err)
	}
	return chunks, nil
}

// flowChunks reads a sample's flow chunks [from, to) in order; to < 0 reads them all.
func (s *sqlStore) flowChunks(ctx context.Context, q queryer, id string, from, to int) ([][]byte, error) {
	if to < 0 {
		to = math.MaxInt32
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT flows FROM sample_flow_chunks WHERE sample_id = ? AND chunk >= ? AND chunk < ?
		ORDER BY chunk`), id, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func (s *sqlStore) FailWindow(ctx context.Context, f WindowFailure) (int, error) {
	msg := strings.ToValidUTF8(f.Error, "?")
	if len(msg) > MaxWriteError {
		msg = strings.ToValidUTF8(msg[:MaxWriteError], "")
	}
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

func (s *sqlStore) SetSampleState(ctx context.Context, id string, state SampleState, remoteID, relayError string) (*Sample, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE samples SET state = ?, remote_id = ?, relay_error = ?, updated_at = ?
		WHERE id = ?`), string(state), remoteID, relayError, ms(time.Now()), id)
	if err != nil {
		return nil, fmt.Errorf("store: set sample state: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return s.GetSample(ctx, id)
}

func (s *sqlStore) ContactHost(ctx context.Context, c HostContact) error {
	connected := 0
	if c.Connected {
		connected = 1
	}
	err := s.smallWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO hosts (name, stream_id, software_version, window_seconds,
		first_contact, last_contact, connected, collector, drops_reported)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			stream_id = CASE WHEN excluded.stream_id <> '' THEN excluded.stream_id ELSE hosts.stream_id END,
			software_version = CASE WHEN excluded.software_version <> '' THEN excluded.software_version ELSE hosts.software_version END,
			window_seconds = CASE WHEN excluded.window_seconds > 0 THEN excluded.window_seconds ELSE hosts.window_seconds END,
			last_contact = excluded.last_contact,
			connected = excluded.connected,
			collector = excluded.collector,
			drops_reported = `+satSum("hosts.drops_reported", "excluded.drops_reported")),
			c.Name, c.StreamID, c.SoftwareVersion, int64(c.WindowSeconds), ms(c.At), ms(c.At), connected, c.Collector,
			int64(min(c.Drops, MaxSeq)))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: contact host: %w", err)
	}
	return nil
}

func (s *sqlStore) ListHosts(ctx context.Context, f HostFilter) ([]Host, string, error) {
	size := f.PageSize
	if size <= 0 {
		size = DefaultHostPageSize
	}
	if size > MaxPageSize {
		size = MaxPageSize
	}
	var where []string
	var args []any
	switch {
	case f.ConnectedOnly && f.Collector != "":
		where = append(where, "(connected = 1 OR collector = ?)")
		args = append(args, f.Collector)
	case f.ConnectedOnly:
		where = append(where, "connected = 1")
	}
	if f.PageToken != "" {
		after, err := decodeHostToken(f.PageToken)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "name > ?")
		args = append(args, after)
	}
	query := `SELECT name, stream_id, software_version, window_seconds, first_contact, last_contact, connected,
		collector, flows_received, drops_reported, flows_dropped FROM hosts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY name LIMIT ?"
	args = append(args, size+1)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list hosts: %w", err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		var h Host
		var secs, first, last, connected, flows, drops, flowDrops int64
		if err := rows.Scan(&h.Name, &h.StreamID, &h.SoftwareVersion, &secs, &first, &last, &connected, &h.Collector, &flows, &drops, &flowDrops); err != nil {
			return nil, "", fmt.Errorf("store: list hosts: %w", err)
		}
		h.WindowSeconds = uint32(secs)
		h.FirstContact, h.LastContact = fromMS(first), fromMS(last)
		h.Connected = connected != 0
		h.FlowsReceived, h.DropsReported, h.FlowsDropped = uint64(max(flows, 0)), uint64(max(drops, 0)), uint64(max(flowDrops, 0))
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list hosts: %w", err)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = HostPageToken(out[len(out)-1].Name)
	}
	return out, next, nil
}

// HostPageToken is the ListHosts page token of the page that starts after host name: the same scheme
// as ListSamples' tokens (URL-safe base64 of the last key returned), marked so that neither is taken
// for the other.
func HostPageToken(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(hostTokenPrefix + name))
}

const hostTokenPrefix = "host:"

func decodeHostToken(t string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	name := strings.TrimPrefix(string(b), hostTokenPrefix)
	if err != nil || !strings.HasPrefix(string(b), hostTokenPrefix) || HostPageToken(name) != t || !tokenKey(name, 253) {
		return "", ErrBadToken
	}
	return strings.TrimPrefix(string(b), hostTokenPrefix), nil
}

func (s *sqlStore) CountOpenWindows(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM windows WHERE state = 'open'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count windows: %w", err)
	}
	return n, nil
}
