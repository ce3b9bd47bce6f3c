package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
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
		// busy_timeout comes first: the pragmas run in order as each connection opens, and switching a new
		// file to WAL takes a lock that another process opening it at the same time may hold.
		q := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
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

// satSum is the SQL of a + b for two non-negative counters, saturating at 2^63−1: a plain sum would
// overflow (an error on PostgreSQL, a REAL on SQLite that no reader can scan as an integer).
func satSum(a, b string) string {
	return "CASE WHEN " + a + " > 9223372036854775807 - " + b + " THEN 9223372036854775807 ELSE " + a + " + " + b + " END"
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

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}
