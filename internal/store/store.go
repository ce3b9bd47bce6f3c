// Package store keeps the collector's state: hosts, per-stream dedup marks, open windows with the flow
// batches they received, and the samples written from them (metadata, .bf content and flows). One
// interface, two backends on database/sql: SQLite (embedded default, pure Go, modernc.org/sqlite) and
// PostgreSQL (pgx), with versioned migrations (goose) run at open.
//
// Every method is safe for concurrent use. Batches are durable when SaveBatches returns: the collector
// acknowledges a batch only after that.
//
// The files go by what they store: db.go (open, dialects, migrations, write transactions), batches.go
// (SaveBatches), windows.go (ending, closing and failing windows), samples.go (reading samples, relay
// states), hosts.go, seqmarks.go (dedup marks), outbox.go (relay queue), enrichment.go (NetworkSage's answers), flowindex.go (fleet search's
// index), prune.go (retention) and integrity.go.
//
// Integrity (integrity.go): each sample's content is stored with its SHA-256 and checked when read
// (SampleContent, ErrCorrupt when it no longer matches); Open checks a SQLite file with PRAGMA quick_check before
// migrating it, and fails on a damaged one.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound reports a sample or host that does not exist.
var ErrNotFound = errors.New("not found")

// SampleState is where a sample is on its way to NetworkSage.
type SampleState string

// The sample states (DESIGN.md: open → closed → written → relayed | relay_failed).
const (
	StateOpen        SampleState = "open"
	StateClosed      SampleState = "closed"
	StateWritten     SampleState = "written"
	StateRelayed     SampleState = "relayed"
	StateRelayFailed SampleState = "relay_failed"
	StateProcessed   SampleState = "processed"
	// StateWriteFailed marks the placeholder sample of a window whose close failed (FailWindow): it has
	// no content, WriteError says why, and the sample that a later retry writes replaces it.
	StateWriteFailed SampleState = "write_failed"
	// StateEnriched: NetworkSage's answers about a processed sample are stored (docs/enrichment.md).
	StateEnriched SampleState = "enriched"
	// StateEnrichmentFailed: fetching NetworkSage's answers failed for good; Sample.Enrichment.Error says
	// which call failed and how. The sample's flows and file are untouched.
	StateEnrichmentFailed SampleState = "enrichment_failed"
)

// Batch is one acknowledged unit of a sensor's stream, split by window.
type Batch struct {
	Host     string
	StreamID string
	Seq      uint64
	Parts    []BatchPart
	// Drops is the packets the sensor reported lost with this batch (kernel and sensor packets) and
	// FlowDrops the flows; both are added to the host's totals once, saturating at 2^63−1.
	Drops     uint64
	FlowDrops uint64
	Received  time.Time
	// Limits bounds the windows this batch's parts go to (zero: no bound). SaveBatches keeps the flows
	// that fit and drops the rest, reporting them in each part's Dropped.
	Limits WindowLimits
}

// WindowLimits bounds what one window (all its revisions) holds. A bound of 0 is no bound.
type WindowLimits struct {
	MaxFlows int64 // flows
	MaxBytes int64 // encoded flow bytes (BatchPart.Flows)
}

// Outcome is what SaveBatches did with one batch.
type Outcome uint8

const (
	// Stored: the batch is durable now.
	Stored Outcome = iota
	// Duplicate: the batch was stored before (same host, stream and seq); it is not stored again.
	Duplicate
	// OutOfOrder: the seq is at or below the stream's mark but was never stored, is more than
	// RecentSeqs below the mark, or is 0 or above MaxSeq. The batch is not stored and must not be
	// acknowledged: it is neither new nor a replay the store can vouch for.
	OutOfOrder
)

func (o Outcome) String() string {
	switch o {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case OutOfOrder:
		return "out_of_order"
	}
	return "unknown"
}

// BatchPart is the flows of a batch that fall into one window, encoded by the collector.
type BatchPart struct {
	WindowStart   int64
	WindowSeconds uint32
	FlowCount     int
	Flows         []byte
	// FlowEnds, when set, holds the end offset in Flows of each flow (FlowCount of them), so that a
	// part that does not fit its window's bound can be cut after its last flow that fits; without it
	// such a part is dropped whole. Flows[:FlowEnds[i]] must be a valid encoding of the first i+1 flows.
	FlowEnds []int

	// Set by SaveBatches: the flows of this part dropped by the window's bound (Batch.Limits), and
	// whether this part is the one that first took its window over the bound.
	Dropped    int
	Overflowed bool
}

// WindowRef names one host × window.
type WindowRef struct {
	Host          string
	WindowStart   int64
	WindowSeconds uint32
}

// WindowContent is what a window holds when it closes.
type WindowContent struct {
	WindowRef
	Revision       int // the revision the new sample gets (1 for the first)
	FirstFrameTime float64
	Batches        [][]byte // encoded flows, in arrival order
	// Pruned reports a window whose batches were pruned (PruneBatches) after an earlier close, and that
	// a late batch reopened. The pruned batches are then stood in for by the flows of the sample the
	// window had when they were pruned (BaseRevision), which come first in Batches: that sample was
	// built from every batch pruned, so the new revision still holds the whole window. BaseRevision is
	// 0 when that sample is gone (Batches then holds only the batches received since the prune).
	Pruned       bool
	BaseRevision int
	// CloseAttempts counts the earlier failed closes of this revision (FailWindow); FlowsDropped the
	// flows the window's bound dropped.
	CloseAttempts int
	FlowsDropped  int64
}

// FlowChunkFlows is how many flows each chunk of NewSample.FlowChunks holds (the last may hold fewer).
const FlowChunkFlows = 1000

// WindowFailure records a failed close of a window (FailWindow).
type WindowFailure struct {
	WindowRef
	Error string    // why; cut to MaxWriteError bytes
	At    time.Time // when the close failed
	// Backoff gives the wait before the next attempt after the attempt-th failure (1, 2, …).
	Backoff func(attempt int) time.Duration
	// Name gives the id and file name of the sample the window's revision would have.
	Name func(revision int) (id, fileName string)
}

// MaxWriteError bounds Sample.WriteError.
const MaxWriteError = 1024

// NewSample is a sample built from a window, ready to be recorded.
type NewSample struct {
	ID        string
	FileName  string
	FlowCount int
	Bytes     int64 // payload bytes of all flows
	State     SampleState
	Content   []byte // the .bf file
	Flows     []byte // the flows, encoded, in sample order (when FlowChunks is nil)
	// FlowChunks, when set, holds the flows in sample order in chunks of FlowChunkFlows flows, each
	// encoded alone (their concatenation is what Flows would hold); they are stored one row each, so
	// that SampleFlowChunks reads a page's chunks only.
	FlowChunks [][]byte
	Relay      bool // queue the sample for the NetworkSage relay (Outbox) in the same transaction
	Sink       bool // queue the sample for the message-bus sink (SinkQueue) in the same transaction
}

// Sample is a sample's metadata.
type Sample struct {
	ID            string
	Host          string
	WindowStart   int64
	WindowSeconds uint32
	Revision      int
	FlowCount     int
	Bytes         int64
	State         SampleState
	FileName      string
	RemoteID      string
	RelayError    string
	WriteError    string // why the window's sample could not be written (StateWriteFailed)
	FlowsDropped  int64  // flows the window's bound dropped (WindowLimits)
	Created       time.Time
	Updated       time.Time
	// Processed is when NetworkSage was seen to have processed the sample (zero before).
	Processed  time.Time
	Enrichment Enrichment
}

// SampleFilter selects samples; zero values select everything.
type SampleFilter struct {
	Host      string
	Since     time.Time // window start at or after
	Until     time.Time // window start before
	State     SampleState
	FileName  string // the sample whose file is this (a shortened file name does not give its id)
	PageSize  int
	PageToken string
}

// HostFilter selects and pages hosts, ordered by name.
type HostFilter struct {
	// ConnectedOnly selects the hosts marked connected, and every host whose Collector is Collector:
	// the collector that asks knows its own hosts' streams better than the table, and filters those
	// itself.
	ConnectedOnly bool
	Collector     string
	// PageSize is the most hosts to return: 0 means DefaultHostPageSize, and at most MaxPageSize.
	PageSize int
	// PageToken is the next token of the previous page, or "" for the first page.
	PageToken string
}

// DefaultHostPageSize is the ListHosts page size when none is asked for.
const DefaultHostPageSize = 100

// Host is what the collector knows of one sensor host.
type Host struct {
	Name            string
	StreamID        string
	SoftwareVersion string
	WindowSeconds   uint32
	FirstContact    time.Time
	LastContact     time.Time
	Connected       bool
	Collector       string
	FlowsReceived   uint64
	DropsReported   uint64 // packets reported lost
	FlowsDropped    uint64 // flows reported lost
}

// HostContact records a sensor's hello or goodbye.
type HostContact struct {
	Name            string
	StreamID        string
	SoftwareVersion string
	WindowSeconds   uint32
	Connected       bool
	Collector       string
	Drops           uint64 // drops to add (hello totals are not added: batches carry deltas)
	At              time.Time
}

// Store is the collector's persistent state.
type Store interface {
	// SaveBatches stores batches in one transaction and says what it did with each: Stored,
	// Duplicate (stored before: recognised by host, stream and seq among the RecentSeqs seqs at and
	// below the stream's mark) or OutOfOrder (not stored: any other seq at or below the mark). Batches
	// of one stream must come in ascending seq.
	SaveBatches(ctx context.Context, batches []Batch) ([]Outcome, error)
	// EndWindow marks a window as complete on the sensor's side, so it closes without waiting for grace.
	EndWindow(ctx context.Context, w WindowRef, firstFrameTime float64) error
	// DueWindows lists open windows that are marked ended, or whose end (or last batch) is grace ago,
	// and whose failed close (FailWindow) is not waiting for its next attempt; oldest first.
	DueWindows(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]WindowRef, error)
	// CloseWindow builds and records the window's next sample revision in one transaction; build
	// receives the window's batches. It returns nil, nil when the window is not open (someone closed
	// it first).
	CloseWindow(ctx context.Context, w WindowRef, build func(WindowContent) (NewSample, error)) (*Sample, error)
	// FailWindow records a failed close: the window's attempts count goes up, its next attempt waits
	// f.Backoff(attempts), and a placeholder sample in state StateWriteFailed shows the error until a
	// close succeeds. It returns the attempts so far (1 after the first failure); 0 when the window is
	// not open.
	FailWindow(ctx context.Context, f WindowFailure) (attempts int, err error)
	// SetSampleFile records whether a recorded sample's .bf file was written: StateWritten when
	// writeErr is "", else StateWriteFailed with writeErr (cut to MaxWriteError bytes). Only a sample in
	// StateClosed or StateWriteFailed changes; one the relay moved on meanwhile keeps its state. It
	// returns the sample as it is then, ErrNotFound when there is none.
	SetSampleFile(ctx context.Context, id, writeErr string) (*Sample, error)

	ListSamples(ctx context.Context, f SampleFilter) (samples []Sample, nextToken string, err error)
	GetSample(ctx context.Context, id string) (*Sample, error)
	SampleContent(ctx context.Context, id string) ([]byte, error)
	// SampleFlows returns a sample's flows, encoded, in sample order (all chunks, concatenated).
	SampleFlows(ctx context.Context, id string) ([]byte, error)
	// SampleFlowChunks returns chunks [from, to) of a sample stored in chunks (fewer past its end). A
	// sample stored whole (before migration 00005) has none: SampleFlows then has its flows.
	SampleFlowChunks(ctx context.Context, id string, from, to int) ([][]byte, error)
	// SetSampleState records a relay outcome.
	SetSampleState(ctx context.Context, id string, state SampleState, remoteID, relayError string) (*Sample, error)

	ContactHost(ctx context.Context, c HostContact) error
	// ListHosts returns one page of hosts ordered by name, and the token of the next page ("" after the
	// last page).
	ListHosts(ctx context.Context, f HostFilter) (hosts []Host, nextToken string, err error)

	// CountOpenWindows counts windows not closed yet.
	CountOpenWindows(ctx context.Context) (int, error)

	// Outbox is the relay queue (outbox.go), enrichment included.
	Outbox
	// Enrichments reads what NetworkSage said of samples (enrichment.go).
	Enrichments
	// SinkQueue is the message-bus sink's queue (sinkqueue.go).
	SinkQueue

	// Pruner deletes what the retention settings let go (prune.go).
	Pruner

	// FlowIndex is the fleet search index (flowindex.go).
	FlowIndex

	// Ping checks the database.
	Ping(ctx context.Context) error
	// CheckWritable commits a tiny write transaction (collector's row of a probe table): the collector's
	// readiness check (integrity.go).
	CheckWritable(ctx context.Context, collector string) error
	// Stats says which backend this is, whether Open created it, and how many samples it holds.
	Stats(ctx context.Context) (Stats, error)
	Close() error
}
