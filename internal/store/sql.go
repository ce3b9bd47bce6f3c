package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
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
		s.db.SetMaxOpenConns(32)
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
		// One writer at a time is SQLite's model; a few connections let reads run beside it.
		s.db.SetMaxOpenConns(4)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
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
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
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

// SaveBatches stores a group of batches in one transaction, in four steps so that concurrent
// transactions (several collectors on PostgreSQL) lock shared rows in one global order and cannot
// deadlock: (1) the dedup marks of every stream, sorted by (host, stream, seq), each advanced only if
// the batch is above it (a conditional upsert, so two collectors holding the same replayed batch store
// it once); (2) the batches' parts, in arrival order; (3) the windows they touch, sorted, one upsert
// each; (4) the hosts' counters, sorted, one update each.
func (s *sqlStore) SaveBatches(ctx context.Context, batches []Batch) ([]bool, error) {
	dup := make([]bool, len(batches))
	if len(batches) == 0 {
		return dup, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: save batches: %w", err)
	}
	defer tx.Rollback()
	setHWM, err := tx.PrepareContext(ctx, s.q(`INSERT INTO streams (host, stream_id, hwm) VALUES (?, ?, ?)
		ON CONFLICT (host, stream_id) DO UPDATE SET hwm = excluded.hwm WHERE streams.hwm < excluded.hwm`))
	if err != nil {
		return nil, fmt.Errorf("store: save batches: %w", err)
	}
	defer setHWM.Close()
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
	for _, i := range order {
		b := &batches[i]
		res, err := setHWM.ExecContext(ctx, b.Host, b.StreamID, int64(b.Seq))
		if err != nil {
			return nil, fmt.Errorf("store: save batches: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("store: save batches: %w", err)
		}
		dup[i] = n == 0 // at or below the stream's mark: stored before
	}

	type windowKey struct {
		host  string
		start int64
	}
	type windowAdd struct {
		secs  uint32
		flows int
		last  int64
	}
	type hostAdd struct {
		flows, drops int64
		last         int64
	}
	windows := map[windowKey]*windowAdd{}
	hosts := map[string]*hostAdd{}
	addPart, err := tx.PrepareContext(ctx, s.q(`INSERT INTO window_batches
		(host, window_start, stream_id, seq, flow_count, flows, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return nil, fmt.Errorf("store: save batches: %w", err)
	}
	defer addPart.Close()
	for i := range batches {
		if dup[i] {
			continue
		}
		b := &batches[i]
		at := ms(b.Received)
		h := hosts[b.Host]
		if h == nil {
			h = &hostAdd{}
			hosts[b.Host] = h
		}
		h.drops += int64(b.Drops)
		h.last = max(h.last, at)
		for _, p := range b.Parts {
			if _, err := addPart.ExecContext(ctx, b.Host, p.WindowStart, b.StreamID, int64(b.Seq), p.FlowCount, p.Flows, at); err != nil {
				return nil, fmt.Errorf("store: save batches: %w", err)
			}
			k := windowKey{b.Host, p.WindowStart}
			w := windows[k]
			if w == nil {
				w = &windowAdd{secs: p.WindowSeconds}
				windows[k] = w
			}
			w.flows += p.FlowCount
			w.last = max(w.last, at)
			h.flows += int64(p.FlowCount)
		}
	}

	if len(windows) > 0 {
		keys := make([]windowKey, 0, len(windows))
		for k := range windows {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(a, b int) bool {
			if keys[a].host != keys[b].host {
				return keys[a].host < keys[b].host
			}
			return keys[a].start < keys[b].start
		})
		openWindow, err := tx.PrepareContext(ctx, s.q(`INSERT INTO windows
			(host, window_start, window_seconds, state, end_marked, last_batch_at, revision, flow_count)
			VALUES (?, ?, ?, 'open', 0, ?, 0, ?)
			ON CONFLICT (host, window_start) DO UPDATE SET
				end_marked = CASE WHEN windows.state = 'open' THEN windows.end_marked ELSE 0 END,
				state = 'open',
				last_batch_at = excluded.last_batch_at,
				flow_count = windows.flow_count + excluded.flow_count`))
		if err != nil {
			return nil, fmt.Errorf("store: save batches: %w", err)
		}
		defer openWindow.Close()
		for _, k := range keys {
			w := windows[k]
			if _, err := openWindow.ExecContext(ctx, k.host, k.start, int64(w.secs), w.last, w.flows); err != nil {
				return nil, fmt.Errorf("store: save batches: %w", err)
			}
		}
	}

	if len(hosts) > 0 {
		names := make([]string, 0, len(hosts))
		for name := range hosts {
			names = append(names, name)
		}
		sort.Strings(names)
		countHost, err := tx.PrepareContext(ctx, s.q(`UPDATE hosts SET flows_received = flows_received + ?,
			drops_reported = drops_reported + ?, last_contact = ? WHERE name = ?`))
		if err != nil {
			return nil, fmt.Errorf("store: save batches: %w", err)
		}
		defer countHost.Close()
		for _, name := range names {
			h := hosts[name]
			if _, err := countHost.ExecContext(ctx, h.flows, h.drops, h.last, name); err != nil {
				return nil, fmt.Errorf("store: save batches: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: save batches: commit: %w", err)
	}
	return dup, nil
}

func (s *sqlStore) EndWindow(ctx context.Context, w WindowRef, firstFrameTime float64) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE windows SET end_marked = 1,
		first_frame_time = CASE WHEN ? > 0 THEN ? ELSE first_frame_time END
		WHERE host = ? AND window_start = ? AND state = 'open'`), firstFrameTime, firstFrameTime, w.Host, w.WindowStart)
	if err != nil {
		return fmt.Errorf("store: end window: %w", err)
	}
	return nil
}

func (s *sqlStore) DueWindows(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]WindowRef, error) {
	g := grace.Milliseconds()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT host, window_start, window_seconds FROM windows
		WHERE state = 'open' AND (end_marked = 1 OR
			((window_start + window_seconds) * 1000 + ? <= ? AND last_batch_at + ? <= ?))
		ORDER BY window_start, host LIMIT ?`), g, ms(now), g, ms(now), limit)
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

func (s *sqlStore) CloseWindow(ctx context.Context, w WindowRef, build func(WindowContent) (NewSample, error)) (*Sample, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	defer tx.Rollback()
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var c WindowContent
	var secs int64
	err = tx.QueryRowContext(ctx, s.q(`SELECT window_seconds, revision, first_frame_time FROM windows
		WHERE host = ? AND window_start = ? AND state = 'open'`+lock), w.Host, w.WindowStart).Scan(&secs, &c.Revision, &c.FirstFrameTime)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	c.WindowRef = WindowRef{Host: w.Host, WindowStart: w.WindowStart, WindowSeconds: uint32(secs)}
	c.Revision++
	rows, err := tx.QueryContext(ctx, s.q(`SELECT flows FROM window_batches WHERE host = ? AND window_start = ? ORDER BY id`), w.Host, w.WindowStart)
	if err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: close window: %w", err)
		}
		c.Batches = append(c.Batches, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	ns, err := build(c)
	if err != nil {
		return nil, fmt.Errorf("store: close window %s/%d: %w", w.Host, w.WindowStart, err)
	}
	now := time.Now()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO samples (id, host, window_start, window_seconds, revision,
		flow_count, bytes, state, file_name, content, flows, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), ns.ID, w.Host, w.WindowStart, secs, c.Revision,
		ns.FlowCount, ns.Bytes, string(ns.State), ns.FileName, ns.Content, ns.Flows, ms(now), ms(now)); err != nil {
		return nil, fmt.Errorf("store: close window: record sample: %w", err)
	}
	if ns.Relay {
		if err := s.enqueueTx(ctx, tx, ns.ID, ns.FileName, now); err != nil {
			return nil, fmt.Errorf("store: close window: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE windows SET state = 'closed', end_marked = 0, revision = ?
		WHERE host = ? AND window_start = ?`), c.Revision, w.Host, w.WindowStart); err != nil {
		return nil, fmt.Errorf("store: close window: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: close window: commit: %w", err)
	}
	return &Sample{ID: ns.ID, Host: w.Host, WindowStart: w.WindowStart, WindowSeconds: uint32(secs),
		Revision: c.Revision, FlowCount: ns.FlowCount, Bytes: ns.Bytes, State: ns.State, FileName: ns.FileName,
		Created: now.UTC().Truncate(time.Millisecond), Updated: now.UTC().Truncate(time.Millisecond)}, nil
}

const sampleCols = `id, host, window_start, window_seconds, revision, flow_count, bytes, state, file_name,
	remote_id, relay_error, created_at, updated_at`

func scanSample(sc interface{ Scan(...any) error }) (*Sample, error) {
	var x Sample
	var secs, created, updated int64
	var state string
	if err := sc.Scan(&x.ID, &x.Host, &x.WindowStart, &secs, &x.Revision, &x.FlowCount, &x.Bytes, &state,
		&x.FileName, &x.RemoteID, &x.RelayError, &created, &updated); err != nil {
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
	if err != nil {
		return 0, "", ErrBadToken
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
	err := s.db.QueryRowContext(ctx, s.q("SELECT "+col+" FROM samples WHERE id = ?"), id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: sample %s: %w", col, err)
	}
	return b, nil
}

func (s *sqlStore) SampleContent(ctx context.Context, id string) ([]byte, error) {
	return s.blob(ctx, "content", id)
}

func (s *sqlStore) SampleFlows(ctx context.Context, id string) ([]byte, error) {
	return s.blob(ctx, "flows", id)
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
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO hosts (name, stream_id, software_version, window_seconds,
		first_contact, last_contact, connected, collector, drops_reported)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			stream_id = CASE WHEN excluded.stream_id <> '' THEN excluded.stream_id ELSE hosts.stream_id END,
			software_version = CASE WHEN excluded.software_version <> '' THEN excluded.software_version ELSE hosts.software_version END,
			window_seconds = CASE WHEN excluded.window_seconds > 0 THEN excluded.window_seconds ELSE hosts.window_seconds END,
			last_contact = excluded.last_contact,
			connected = excluded.connected,
			collector = excluded.collector,
			drops_reported = hosts.drops_reported + excluded.drops_reported`),
		c.Name, c.StreamID, c.SoftwareVersion, int64(c.WindowSeconds), ms(c.At), ms(c.At), connected, c.Collector, int64(c.Drops))
	if err != nil {
		return fmt.Errorf("store: contact host: %w", err)
	}
	return nil
}

func (s *sqlStore) ListHosts(ctx context.Context) ([]Host, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, stream_id, software_version, window_seconds, first_contact,
		last_contact, connected, collector, flows_received, drops_reported FROM hosts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list hosts: %w", err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		var h Host
		var secs, first, last, connected, flows, drops int64
		if err := rows.Scan(&h.Name, &h.StreamID, &h.SoftwareVersion, &secs, &first, &last, &connected, &h.Collector, &flows, &drops); err != nil {
			return nil, fmt.Errorf("store: list hosts: %w", err)
		}
		h.WindowSeconds = uint32(secs)
		h.FirstContact, h.LastContact = fromMS(first), fromMS(last)
		h.Connected = connected != 0
		h.FlowsReceived, h.DropsReported = uint64(flows), uint64(drops)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *sqlStore) CountOpenWindows(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM windows WHERE state = 'open'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count windows: %w", err)
	}
	return n, nil
}
