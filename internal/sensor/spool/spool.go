package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/pkg/atomicfile"
)

// Names inside the spool directory.
const (
	StreamIDFile = "stream-id" // the stream id, 32 hex digits and a newline
	SeqFile      = "seq"       // the highest seq ever assigned, decimal, and a newline
	LockFile     = "lock"      // flock'd while a spool is open
	CorruptDir   = "corrupt"   // corrupt files are moved here
	batchSuffix  = ".batch"
	tmpPrefix    = ".tmp-"
)

// Defaults.
const (
	DefaultMaxBytes   = 1 << 30
	DefaultMaxCorrupt = 100
)

// ErrNotFound is returned by Read for a seq that is not (or no longer) in the spool.
var ErrNotFound = errors.New("batch not in spool")

// Options configures Open.
type Options struct {
	// Dir is the spool directory; created (0700) if missing. Required.
	Dir string
	// MaxBytes bounds the batch files' total size; past it the oldest batches are deleted. 0 means
	// DefaultMaxBytes. The newest batch is always kept, even if it alone is larger.
	MaxBytes int64
	// MaxCorrupt bounds the files kept in Dir/corrupt; 0 means DefaultMaxCorrupt.
	MaxCorrupt int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil means unregistered metrics.
	Metrics *metrics.Metrics
}

// Losses are what the spool lost since the last TakeLosses: flows of batches it deleted because it was
// full (or failed to write), and the drop counters those batches carried.
type Losses struct {
	Batches uint64
	Flows   uint64
	Drops   Drops
}

// Drops mirrors flowfleetv1.DropCounters as plain numbers.
type Drops struct {
	KernelPackets, SensorPackets, SensorFlows uint64
}

// Add adds d's counts, and those of c when it is not nil.
func (d *Drops) Add(c *flowfleetv1.DropCounters) {
	d.KernelPackets += c.GetKernelPackets()
	d.SensorPackets += c.GetSensorPackets()
	d.SensorFlows += c.GetSensorFlows()
}

// IsZero reports whether every count is zero.
func (d Drops) IsZero() bool { return d == Drops{} }

// Proto returns the counts as a message, or nil when all are zero.
func (d Drops) Proto() *flowfleetv1.DropCounters {
	if d.IsZero() {
		return nil
	}
	return &flowfleetv1.DropCounters{KernelPackets: d.KernelPackets, SensorPackets: d.SensorPackets, SensorFlows: d.SensorFlows}
}

type entry struct {
	seq   uint64
	size  int64
	flows int
	drops Drops
}

// Stats is a snapshot of the spool.
type Stats struct {
	Batches int
	Bytes   int64
	LastSeq uint64 // highest seq ever assigned (persisted across restarts)
	Oldest  uint64 // lowest seq in the spool, 0 when empty
}

// Spool is the sensor's durable, bounded store of flow batches that a collector has not acknowledged.
// Append is for one goroutine (the producer); Next, Read and Ack for the shipper; every method is safe for
// concurrent use.
type Spool struct {
	dir      string
	maxBytes int64
	maxBad   int
	log      *slog.Logger
	m        *metrics.Metrics
	lock     *os.File
	streamID string

	appendMu sync.Mutex // serialises Append, so seqs enter the index in order

	mu      sync.Mutex
	entries []entry // ascending seq
	bytes   int64
	lastSeq uint64
	losses  Losses
	changed chan struct{}
	closed  bool
}

// Open opens (or creates) the spool in opts.Dir: it takes the directory's lock, loads or creates the
// stream id, scans the batch files (moving corrupt ones to Dir/corrupt), and enforces MaxBytes. It fails
// only when the directory cannot be used at all; damaged contents are logged and set aside.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("open spool: no directory given")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxCorrupt <= 0 {
		opts.MaxCorrupt = DefaultMaxCorrupt
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: opts.Dir, maxBytes: opts.MaxBytes, maxBad: opts.MaxCorrupt, log: opts.Logger.With(slog.String("spool_dir", opts.Dir)),
		m: opts.Metrics, changed: make(chan struct{}, 1)}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open spool: %s is in use by another sensor (%w)", opts.Dir, err)
	}
	s.lock = lock
	if err := s.load(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open spool: %w", err)
	}
	return s, nil
}

func (s *Spool) load() error {
	persisted, seqErr := s.readSeq()
	id, idErr := s.readStreamID()
	switch {
	case idErr == nil && seqErr != nil:
		// The counter is lost: seqs could repeat under this stream id and a collector would take new
		// batches for replays. A new stream id makes every seq unique again.
		s.log.Error("spool seq counter unreadable; starting a new stream id so that batch numbers cannot repeat",
			slog.String("old_stream_id", id), slog.String("err", seqErr.Error()))
		id = ""
	case idErr != nil && !errors.Is(idErr, fs.ErrNotExist):
		s.log.Error("spool stream id unreadable; moving it aside and starting a new stream id", slog.String("err", idErr.Error()))
		s.quarantine(filepath.Join(s.dir, StreamIDFile), idErr)
	}
	if id == "" || idErr != nil {
		var raw [16]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return fmt.Errorf("new stream id: %w", err)
		}
		id = hex.EncodeToString(raw[:])
		if err := atomicfile.WriteFile(filepath.Join(s.dir, StreamIDFile), []byte(id+"\n"), 0o600); err != nil {
			return fmt.Errorf("write stream id: %w", err)
		}
		s.log.Info("new stream id", slog.String("stream_id", id))
	}
	s.streamID = id

	names, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, de := range names {
		name := de.Name()
		path := filepath.Join(s.dir, name)
		if strings.HasPrefix(name, tmpPrefix) || (strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp")) {
			_ = os.Remove(path) // a write cut short by a crash; its batch was never acknowledged as spooled
			continue
		}
		if !strings.HasSuffix(name, batchSuffix) || !de.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, batchSuffix), 10, 64)
		if err != nil || seq == 0 || name != fileName(seq) {
			s.quarantine(path, fmt.Errorf("%w: file name is not a batch number", ErrCorrupt))
			continue
		}
		b, size, err := readFile(path)
		if err == nil && b.GetSeq() != seq {
			err = fmt.Errorf("%w: file name says seq %d, batch says %d", ErrCorrupt, seq, b.GetSeq())
		}
		if err != nil {
			s.quarantine(path, err)
			continue
		}
		e := entry{seq: seq, size: size, flows: len(b.GetFlows())}
		e.drops.Add(b.GetDrops())
		s.entries = append(s.entries, e)
		s.bytes += size
	}
	sort.Slice(s.entries, func(i, j int) bool { return s.entries[i].seq < s.entries[j].seq })
	s.lastSeq = persisted
	if n := len(s.entries); n > 0 && s.entries[n-1].seq > s.lastSeq {
		s.lastSeq = s.entries[n-1].seq
	}
	if seqErr != nil || s.lastSeq != persisted {
		if err := s.writeSeq(s.lastSeq); err != nil {
			return fmt.Errorf("write seq counter: %w", err)
		}
	}
	s.mu.Lock()
	s.enforceLocked(0)
	s.gaugesLocked()
	s.mu.Unlock()
	if len(s.entries) > 0 {
		s.log.Info("spool holds unacknowledged batches from an earlier run", slog.Int("batches", len(s.entries)),
			slog.Uint64("first_seq", s.entries[0].seq), slog.Uint64("last_seq", s.entries[len(s.entries)-1].seq),
			slog.Int64("bytes", s.bytes))
	}
	return nil
}

func (s *Spool) readSeq() (uint64, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, SeqFile))
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", SeqFile, err)
	}
	return n, nil
}

func (s *Spool) readStreamID() (string, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, StreamIDFile))
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(data))
	if len(id) != 32 {
		return "", fmt.Errorf("%s: %d characters, want 32 hex digits", StreamIDFile, len(id))
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", fmt.Errorf("%s: %w", StreamIDFile, err)
	}
	return id, nil
}

func (s *Spool) writeSeq(seq uint64) error {
	return atomicfile.WriteFile(filepath.Join(s.dir, SeqFile), []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600)
}

func fileName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, batchSuffix) }

func readFile(path string) (*flowfleetv1.FlowBatch, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if fi.Size() > HeaderSize+MaxPayload {
		return nil, fi.Size(), fmt.Errorf("%w: %d bytes, larger than any batch file", ErrCorrupt, fi.Size())
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fi.Size(), err
	}
	b, err := Decode(data)
	return b, fi.Size(), err
}

// quarantine moves a damaged file into Dir/corrupt (keeping at most maxBad files there), counts and
// logs it.
func (s *Spool) quarantine(path string, why error) {
	s.m.SpoolCorruptFiles.Inc()
	bad := filepath.Join(s.dir, CorruptDir)
	dst := filepath.Join(bad, fmt.Sprintf("%019d-%s", time.Now().UnixNano(), filepath.Base(path)))
	err := os.MkdirAll(bad, 0o700)
	if err == nil {
		err = os.Rename(path, dst)
	}
	if err != nil {
		s.log.Error("corrupt spool file could not be moved aside; deleting it", slog.String("file", path),
			slog.String("reason", why.Error()), slog.String("err", err.Error()))
		_ = os.Remove(path)
		return
	}
	s.log.Error("corrupt spool file moved aside", slog.String("file", path), slog.String("moved_to", dst),
		slog.String("reason", why.Error()))
	kept, err := os.ReadDir(bad)
	if err != nil {
		return
	}
	names := make([]string, 0, len(kept))
	for _, de := range kept {
		names = append(names, de.Name())
	}
	slices.Sort(names) // by the time prefix: oldest first
	for len(names) > s.maxBad {
		_ = os.Remove(filepath.Join(bad, names[0]))
		names = names[1:]
	}
}

// StreamID returns the spool's stream id: 32 hex digits (128 random bits), created on first use and
// kept in the directory.
func (s *Spool) StreamID() string { return s.streamID }

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Changed returns a channel that receives (without blocking the sender) after each Append, and after
// Close. It has one slot: it is meant for one consumer.
func (s *Spool) Changed() <-chan struct{} { return s.changed }

func (s *Spool) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Append numbers b (setting b.Seq to the next seq), writes it durably (temporary file, fsync, rename,
// directory fsync, then the seq counter) and adds it to the spool; when the spool then exceeds its
// size, the oldest batches are deleted (see TakeLosses). It returns the seq. On error nothing was
// added and b.Seq is reset to 0.
func (s *Spool) Append(b *flowfleetv1.FlowBatch) (uint64, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, errors.New("spool append: spool closed")
	}
	seq := s.lastSeq + 1
	s.mu.Unlock()

	b.Seq = seq
	data, err := Encode(b)
	if err == nil {
		err = s.writeBatch(seq, data)
	}
	if err != nil {
		b.Seq = 0
		s.m.SpoolErrors.Inc()
		return 0, fmt.Errorf("spool append: %w", err)
	}
	// The counter must be durable before the batch can be acknowledged and deleted; until then the file
	// itself records the seq.
	if err := s.writeSeq(seq); err != nil {
		s.log.Warn("spool seq counter not saved; the batch file records it for now", slog.Uint64("seq", seq), slog.String("err", err.Error()))
	}
	e := entry{seq: seq, size: int64(len(data)), flows: len(b.GetFlows())}
	e.drops.Add(b.GetDrops())
	s.mu.Lock()
	s.lastSeq = seq
	s.entries = append(s.entries, e)
	s.bytes += e.size
	s.enforceLocked(seq)
	s.gaugesLocked()
	s.mu.Unlock()
	s.m.BatchesSpooled.Inc()
	s.notify()
	return seq, nil
}

func (s *Spool) writeBatch(seq uint64, data []byte) error {
	tmp, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, filepath.Join(s.dir, fileName(seq))); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// enforceLocked deletes the oldest batches while the spool is over its size, never keep (the batch just
// appended).
func (s *Spool) enforceLocked(keep uint64) {
	if s.bytes <= s.maxBytes {
		return
	}
	var gone []entry
	for s.bytes > s.maxBytes && len(s.entries) > 0 && s.entries[0].seq != keep {
		e := s.entries[0]
		s.entries = s.entries[1:]
		s.bytes -= e.size
		gone = append(gone, e)
		_ = os.Remove(filepath.Join(s.dir, fileName(e.seq)))
	}
	if len(gone) == 0 {
		return
	}
	var flows uint64
	var size int64
	for _, e := range gone {
		flows += uint64(e.flows)
		size += e.size
		s.losses.Drops.KernelPackets += e.drops.KernelPackets
		s.losses.Drops.SensorPackets += e.drops.SensorPackets
		s.losses.Drops.SensorFlows += e.drops.SensorFlows
	}
	s.losses.Batches += uint64(len(gone))
	s.losses.Flows += flows
	s.m.SpoolDroppedBatches.Add(float64(len(gone)))
	s.m.SpoolDroppedFlows.Add(float64(flows))
	s.log.Warn("spool full: deleted the oldest unacknowledged batches", slog.Int("batches", len(gone)),
		slog.Uint64("first_seq", gone[0].seq), slog.Uint64("last_seq", gone[len(gone)-1].seq),
		slog.Uint64("flows", flows), slog.Int64("bytes", size), slog.Int64("max_bytes", s.maxBytes))
}

func (s *Spool) gaugesLocked() {
	s.m.SpoolBytes.Set(float64(s.bytes))
	s.m.SpoolBatches.Set(float64(len(s.entries)))
}

// TakeLosses returns what the spool lost since the previous call and resets it. The sensor adds it to
// the drop counters of its next batch.
func (s *Spool) TakeLosses() Losses {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.losses
	s.losses = Losses{}
	return l
}

// NoteLostFlows records flows that never reached the spool (a failed Append), for TakeLosses.
func (s *Spool) NoteLostFlows(flows uint64, carried *flowfleetv1.DropCounters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.losses.Flows += flows
	s.losses.Drops.Add(carried)
	s.m.SpoolDroppedFlows.Add(float64(flows))
}

func (s *Spool) find(seq uint64) (int, bool) {
	return sort.Find(len(s.entries), func(i int) int {
		switch {
		case seq < s.entries[i].seq:
			return -1
		case seq > s.entries[i].seq:
			return 1
		}
		return 0
	})
}

// Next returns the lowest seq in the spool greater than after.
func (s *Spool) Next(after uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].seq > after })
	if i == len(s.entries) {
		return 0, false
	}
	return s.entries[i].seq, true
}

// Read reads the batch seq from disk. A file found corrupt is moved aside and dropped from the spool
// (the error wraps ErrCorrupt); a seq not in the spool gives ErrNotFound.
func (s *Spool) Read(seq uint64) (*flowfleetv1.FlowBatch, error) {
	s.mu.Lock()
	_, ok := s.find(seq)
	s.mu.Unlock()
	if !ok {
		return nil, ErrNotFound
	}
	path := filepath.Join(s.dir, fileName(seq))
	b, _, err := readFile(path)
	if err == nil && b.GetSeq() != seq {
		err = fmt.Errorf("%w: file name says seq %d, batch says %d", ErrCorrupt, seq, b.GetSeq())
	}
	if err == nil {
		return b, nil
	}
	s.mu.Lock()
	i, ok := s.find(seq)
	if ok {
		e := s.entries[i]
		s.entries = slices.Delete(s.entries, i, i+1)
		s.bytes -= e.size
		s.losses.Flows += uint64(e.flows)
		s.losses.Drops.KernelPackets += e.drops.KernelPackets
		s.losses.Drops.SensorPackets += e.drops.SensorPackets
		s.losses.Drops.SensorFlows += e.drops.SensorFlows
		s.gaugesLocked()
	}
	s.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) || !ok {
		return nil, ErrNotFound // deleted concurrently (acknowledged or dropped for space)
	}
	if errors.Is(err, ErrCorrupt) {
		s.quarantine(path, err)
	}
	return nil, fmt.Errorf("spool read %d: %w", seq, err)
}

// Ack removes the batch seq from the spool. It reports whether the batch was still there (a batch can
// be acknowledged twice, or after it was deleted for space).
func (s *Spool) Ack(seq uint64) (bool, error) {
	s.mu.Lock()
	i, ok := s.find(seq)
	if ok {
		s.bytes -= s.entries[i].size
		s.entries = slices.Delete(s.entries, i, i+1)
		s.gaugesLocked()
	}
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := os.Remove(filepath.Join(s.dir, fileName(seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("spool ack %d: %w", seq, err)
	}
	return true, nil
}

// Stats returns a snapshot.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Batches: len(s.entries), Bytes: s.bytes, LastSeq: s.lastSeq}
	if len(s.entries) > 0 {
		st.Oldest = s.entries[0].seq
	}
	return st
}

// Seqs returns the seqs in the spool, ascending.
func (s *Spool) Seqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint64, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.seq
	}
	return out
}

// Close releases the directory lock. Batches stay on disk for the next Open. Close is what a crash
// does too: nothing needs saving.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.notify()
	if s.lock != nil {
		return s.lock.Close() // closing the descriptor releases the flock
	}
	return nil
}
