package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrCorrupt reports stored bytes that no longer match the checksum recorded when they were written:
// the collector answers DATA_LOSS and never serves them.
var ErrCorrupt = errors.New("stored content does not match its checksum")

// Stats is what Open found, for the collector's start line.
type Stats struct {
	Backend string // "sqlite" or "postgres"
	// Created reports a store that had no FlowFleet tables before this Open (a new store), as opposed
	// to an existing one opened (and migrated if needed).
	Created bool
	Samples int64 // samples recorded (every revision)
}

// checkIntegrity is run by Open before the migrations touch the database.
//
// SQLite: PRAGMA quick_check reads every page of the file and checks the b-trees' structure (not the
// contents of blobs: those are what the samples' checksums are for). It reads the whole file
// (BenchmarkOpenSQLite: 0.3 s for a 100 MB store on the 2-core test machine, so about 3 s a GB).
// A file that fails it makes Open fail, since writing into a damaged b-tree can spread the damage.
// PostgreSQL keeps its own page checksums, so the check is a cheap sanity
// check instead: the session must be able to write (not a read-only standby).
func (s *sqlStore) checkIntegrity(ctx context.Context, path string) error {
	if s.dialect == dialectPostgres {
		var ro string
		if err := s.db.QueryRowContext(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil {
			return fmt.Errorf("store: sanity check: %w", err)
		}
		if ro == "on" {
			return errors.New("store: the PostgreSQL database is read-only (a standby, or default_transaction_read_only is on): the collector must be able to write")
		}
		return nil
	}
	rows, err := s.db.QueryContext(ctx, "PRAGMA quick_check(10)")
	if err != nil {
		return corruptFile(path, err.Error())
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return corruptFile(path, err.Error())
		}
		problems = append(problems, truncate(line, 200))
	}
	if err := rows.Err(); err != nil {
		return corruptFile(path, err.Error())
	}
	if len(problems) == 1 && problems[0] == "ok" {
		return nil
	}
	return corruptFile(path, strings.Join(problems, "; "))
}

// corruptFile is the error of a SQLite file that fails its integrity check: it says what to do.
func corruptFile(path, detail string) error {
	return fmt.Errorf("store: integrity check of SQLite database %s failed: %s; the file is damaged: "+
		"restore it from a backup, or move it aside to start with a new store (sensors resend what they "+
		"still spool)", path, truncate(detail, 1000))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Stats reports the backend, whether Open created the store, and the number of samples recorded.
func (s *sqlStore) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Backend: "sqlite", Created: s.created}
	if s.dialect == dialectPostgres {
		st.Backend = "postgres"
	}
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM samples").Scan(&st.Samples); err != nil {
		return st, fmt.Errorf("store: count samples: %w", err)
	}
	return st, nil
}

// CheckWritable commits a one-row write transaction (collector's row of health_probe, and the removal
// of rows no collector has written for a day: collectors in Kubernetes get a new name with every pod):
// it fails when the database cannot take writes (disk full, read-only file or server, lock held too
// long). It goes through the same queue as the batch commits on SQLite, so a probe that succeeds means a
// commit could get in; it does not prove that a large commit fits on a nearly full disk (the collector
// also watches the commits' own outcomes and the samples directory).
func (s *sqlStore) CheckWritable(ctx context.Context, collector string) error {
	now := time.Now()
	err := s.runWrites(ctx, []*smallOp{{fn: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO health_probe (collector, probed_at) VALUES (?, ?)
			ON CONFLICT (collector) DO UPDATE SET probed_at = excluded.probed_at`), truncate(collector, 256), ms(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM health_probe WHERE probed_at < ?`), ms(now.Add(-probeRowTTL)))
		return err
	}}})
	if err != nil {
		return fmt.Errorf("store: write probe: %w", err)
	}
	return nil
}

// probeRowTTL is how long a health_probe row outlives its collector's last probe.
const probeRowTTL = 24 * time.Hour

// contentSum is the checksum recorded with a sample's content.
func contentSum(content []byte) []byte {
	sum := sha256.Sum256(content)
	return sum[:]
}
