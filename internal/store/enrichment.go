package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Enrichment is what a sample records of NetworkSage's answers about it (docs/enrichment.md).
type Enrichment struct {
	// Verdict, Confidence and Summary come from the sample's summary (or, when NetworkSage could not
	// generate one, its categorization).
	Verdict, Confidence, Summary string
	// Error says why enrichment failed (StateEnrichmentFailed), or what of it did not come back
	// (StateEnriched): which call, and how.
	Error string
	// FlowsMatched + FlowsUnmatched = the sample's flows: those NetworkSage's flow list matched and
	// those it did not. RemoteUnmatched counts NetworkSage's flows that matched none of the sample's.
	FlowsMatched, FlowsUnmatched, RemoteUnmatched int
}

// FlowLabel is what NetworkSage said of one flow of a sample. The zero value is an unmatched flow.
type FlowLabel struct {
	Category string `json:"c,omitempty"`
	FlowID   string `json:"f,omitempty"`
	EventID  string `json:"e,omitempty"`
	// Destination is the flow's destination as NetworkSage writes it (`name:port`, the .bf's dst): the
	// key of its metadata (Destinations).
	Destination string `json:"d,omitempty"`
}

// Destination is NetworkSage's metadata of a destination (name or address, a colon and the port, as
// NetworkSage writes it), cached until Expires.
type Destination struct {
	Name, Title, Description, Relevance string
	Tags                                []string
	Fetched, Expires                    time.Time
}

// The bounds of what NetworkSage's answers may put in the store: longer text is cut (at a UTF-8
// boundary), extra tags dropped. The service is outside the fleet's trust.
const (
	MaxLabelField    = 256       // category, flow id, event id, verdict, confidence, destination name, relevance, a tag
	MaxTitle         = 1024      // a destination's title
	MaxDescription   = 16 << 10  // a destination's description
	MaxSummary       = 64 << 10  // a sample's summary text
	MaxEnrichError   = 1024      // Enrichment.Error
	MaxTags          = 64        // tags per destination
	MaxDestinations  = 100_000   // destinations cached per completion
	maxLabelChunkLen = 1_000_000 // bytes of one stored chunk of labels that a reader accepts
)

// ErrNotRelayed reports a sample that NetworkSage does not have (no remote id): it cannot be enriched.
var ErrNotRelayed = errors.New("not relayed")

// ErrQueued reports a sample that is in the relay queue already.
var ErrQueued = errors.New("already queued")

// Enrichments reads what NetworkSage said of samples, and queues samples for enrichment again.
type Enrichments interface {
	// SampleFlowLabels returns the flow labels of chunks [from, to) of a sample (store.FlowChunkFlows
	// flows a chunk, as SampleFlowChunks); a chunk with no labels (not enriched) is nil.
	SampleFlowLabels(ctx context.Context, id string, from, to int) ([][]FlowLabel, error)
	// Destinations returns the cached metadata of those names that has not expired at now.
	Destinations(ctx context.Context, names []string, now time.Time) (map[string]Destination, error)
	// EnqueueEnrich queues a sample NetworkSage has (a remote id) to be enriched again: it is polled until
	// NetworkSage has processed it (until pollUntil), then enriched. ErrNotFound, ErrNotRelayed, or
	// ErrQueued when the sample is in the relay queue already.
	EnqueueEnrich(ctx context.Context, id string, now, pollUntil time.Time) (*Sample, error)
	// EnqueueEnrichAll does EnqueueEnrich for every sample NetworkSage has that is not queued and is
	// relayed, processed or enrichment_failed, and returns how many it queued.
	EnqueueEnrichAll(ctx context.Context, now, pollUntil time.Time) (int, error)
}

// clip cuts s to at most n bytes at a UTF-8 boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// recordEnrichmentTx records a completion's enrichment parts inside its transaction.
func (s *sqlStore) recordEnrichmentTx(ctx context.Context, tx *sql.Tx, c OutboxCompletion, now time.Time) error {
	if !c.Processed.IsZero() {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE samples SET processed_at = ? WHERE id = ?`), ms(c.Processed),
			c.SampleID); err != nil {
			return fmt.Errorf("record processed time: %w", err)
		}
	}
	if c.Labels != nil {
		if err := s.replaceLabelsTx(ctx, tx, c.SampleID, c.Labels); err != nil {
			return err
		}
	}
	for i, d := range c.Destinations {
		if i == MaxDestinations {
			break
		}
		if err := s.upsertDestinationTx(ctx, tx, d, now); err != nil {
			return err
		}
	}
	if e := c.Enrichment; e != nil {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE samples SET verdict = ?, confidence = ?, summary = ?,
				enrich_error = ?, flows_matched = ?, flows_unmatched = ?, remote_unmatched = ? WHERE id = ?`),
			clip(e.Verdict, MaxLabelField), clip(e.Confidence, MaxLabelField), clip(e.Summary, MaxSummary),
			clip(e.Error, MaxEnrichError), e.FlowsMatched, e.FlowsUnmatched, e.RemoteUnmatched, c.SampleID); err != nil {
			return fmt.Errorf("record enrichment: %w", err)
		}
	}
	return nil
}

// replaceLabelsTx replaces a sample's flow labels, FlowChunkFlows a row.
func (s *sqlStore) replaceLabelsTx(ctx context.Context, tx *sql.Tx, id string, labels []FlowLabel) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sample_flow_labels WHERE sample_id = ?`), id); err != nil {
		return fmt.Errorf("replace flow labels: %w", err)
	}
	for chunk, from := 0, 0; from < len(labels); chunk, from = chunk+1, from+FlowChunkFlows {
		part := labels[from:min(from+FlowChunkFlows, len(labels))]
		clipped := make([]FlowLabel, len(part))
		for i, l := range part {
			clipped[i] = FlowLabel{Category: clip(l.Category, MaxLabelField), FlowID: clip(l.FlowID, MaxLabelField),
				EventID: clip(l.EventID, MaxLabelField), Destination: clip(l.Destination, MaxLabelField)}
		}
		b, err := json.Marshal(clipped)
		if err != nil {
			return fmt.Errorf("encode flow labels: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sample_flow_labels (sample_id, chunk, labels) VALUES (?, ?, ?)`),
			id, chunk, b); err != nil {
			return fmt.Errorf("store flow labels: %w", err)
		}
	}
	return nil
}

func (s *sqlStore) upsertDestinationTx(ctx context.Context, tx *sql.Tx, d Destination, now time.Time) error {
	tags := make([]string, 0, min(len(d.Tags), MaxTags))
	for _, t := range d.Tags {
		if len(tags) == MaxTags {
			break
		}
		tags = append(tags, clip(t, MaxLabelField))
	}
	tj, err := json.Marshal(tags)
	if err != nil {
		return fmt.Errorf("encode destination tags: %w", err)
	}
	fetched := d.Fetched
	if fetched.IsZero() {
		fetched = now
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO sage_destinations (name, title, description, relevance, tags,
			fetched_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET title = excluded.title, description = excluded.description,
			relevance = excluded.relevance, tags = excluded.tags, fetched_at = excluded.fetched_at,
			expires_at = excluded.expires_at`),
		clip(d.Name, MaxLabelField), clip(d.Title, MaxTitle), clip(d.Description, MaxDescription),
		clip(d.Relevance, MaxLabelField), string(tj), ms(fetched), ms(d.Expires))
	if err != nil {
		return fmt.Errorf("cache destination: %w", err)
	}
	return nil
}

func (s *sqlStore) SampleFlowLabels(ctx context.Context, id string, from, to int) ([][]FlowLabel, error) {
	if from < 0 || to <= from {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT chunk, labels FROM sample_flow_labels
		WHERE sample_id = ? AND chunk >= ? AND chunk < ? ORDER BY chunk`), id, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: sample flow labels: %w", err)
	}
	defer rows.Close()
	out := make([][]FlowLabel, min(to-from, 1024))[:0]
	for rows.Next() {
		var chunk int
		var b []byte
		if err := rows.Scan(&chunk, &b); err != nil {
			return nil, fmt.Errorf("store: sample flow labels: %w", err)
		}
		for len(out) < chunk-from {
			out = append(out, nil)
		}
		var ls []FlowLabel
		if len(b) > maxLabelChunkLen || json.Unmarshal(b, &ls) != nil || len(ls) > FlowChunkFlows {
			return nil, fmt.Errorf("store: sample %s: flow labels of chunk %d: %w", id, chunk, ErrCorrupt)
		}
		out = append(out, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sample flow labels: %w", err)
	}
	return out, nil
}

func (s *sqlStore) Destinations(ctx context.Context, names []string, now time.Time) (map[string]Destination, error) {
	out := map[string]Destination{}
	for _, c := range chunks(len(names), 400) {
		args := make([]any, 0, c[1]-c[0]+1)
		args = append(args, ms(now))
		for _, n := range names[c[0]:c[1]] {
			args = append(args, n)
		}
		in := strings.TrimSuffix(strings.Repeat("?, ", c[1]-c[0]), ", ")
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT name, title, description, relevance, tags, fetched_at,
			expires_at FROM sage_destinations WHERE expires_at > ? AND name IN (`+in+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("store: destinations: %w", err)
		}
		for rows.Next() {
			var d Destination
			var tags string
			var fetched, expires int64
			if err := rows.Scan(&d.Name, &d.Title, &d.Description, &d.Relevance, &tags, &fetched, &expires); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: destinations: %w", err)
			}
			_ = json.Unmarshal([]byte(tags), &d.Tags) // written by upsertDestinationTx; odd text reads as none
			d.Fetched, d.Expires = fromMS(fetched), fromMS(expires)
			out[d.Name] = d
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: destinations: %w", err)
		}
	}
	return out, nil
}

// enrichableStates are the states of a sample that EnqueueEnrichAll queues.
const enrichableStates = `('relayed', 'processed', 'enrichment_failed')`

func (s *sqlStore) EnqueueEnrich(ctx context.Context, id string, now, pollUntil time.Time) (*Sample, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: enqueue enrich: %w", err)
	}
	defer tx.Rollback()
	var fileName, remoteID string
	var queued int
	err = tx.QueryRowContext(ctx, s.q(`SELECT file_name, remote_id,
			(SELECT COUNT(*) FROM relay_outbox o WHERE o.sample_id = x.id) FROM samples x WHERE id = ?`), id).
		Scan(&fileName, &remoteID, &queued)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("store: enqueue enrich: %w", err)
	case remoteID == "":
		return nil, ErrNotRelayed
	case queued > 0:
		return nil, ErrQueued
	}
	if err := s.enqueuePollTx(ctx, tx, id, fileName, remoteID, now, pollUntil); err != nil {
		return nil, fmt.Errorf("store: enqueue enrich: %w", err)
	}
	x, err := scanSample(tx.QueryRowContext(ctx, s.q("SELECT "+sampleCols+" FROM samples WHERE id = ?"), id))
	if err != nil {
		return nil, fmt.Errorf("store: enqueue enrich: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: enqueue enrich: commit: %w", err)
	}
	return x, nil
}

func (s *sqlStore) EnqueueEnrichAll(ctx context.Context, now, pollUntil time.Time) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: enqueue enrich: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO relay_outbox (sample_id, file_name, phase, attempts, enqueued_at,
			next_attempt, remote_id, poll_until, phase_started)
		SELECT id, file_name, 'poll', 0, ?, ?, remote_id, ?, ? FROM samples x
		WHERE remote_id <> '' AND state IN `+enrichableStates+`
			AND NOT EXISTS (SELECT 1 FROM relay_outbox o WHERE o.sample_id = x.id)`),
		ms(now), ms(now), ms(pollUntil), ms(now))
	if err != nil {
		return 0, fmt.Errorf("store: enqueue enrich: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: enqueue enrich: commit: %w", err)
	}
	return int(n), nil
}

// enqueuePollTx queues a sample NetworkSage has in the poll phase, due now.
func (s *sqlStore) enqueuePollTx(ctx context.Context, tx *sql.Tx, id, fileName, remoteID string, now, pollUntil time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO relay_outbox (sample_id, file_name, phase, attempts, enqueued_at,
		next_attempt, remote_id, poll_until, phase_started) VALUES (?, ?, 'poll', 0, ?, ?, ?, ?, ?)`),
		id, fileName, ms(now), ms(now), remoteID, ms(pollUntil), ms(now))
	return err
}
