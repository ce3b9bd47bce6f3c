package spool_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/spool"
)

func batch(n int) *flowfleetv1.FlowBatch {
	b := &flowfleetv1.FlowBatch{}
	for i := 0; i < n; i++ {
		b.Flows = append(b.Flows, &flowfleetv1.Flow{SrcAddr: "10.0.0.1", SrcPort: "1234", DstAddr: "10.0.0.2", DstPort: "53",
			DstName: "10.0.0.2", NameSource: flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL, Protocol: flowfleetv1.Protocol_PROTOCOL_UDP,
			SrcPkts: int64(i + 1), FirstSeen: 1700000000.5, LastSeen: 1700000001.25, WindowStart: 1699999800})
	}
	return b
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func open(t *testing.T, dir string, max int64) (*spool.Spool, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	s, err := spool.Open(spool.Options{Dir: dir, MaxBytes: max, Logger: sensortest.QuietLogger(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

func TestSpoolWriteReadAckRestart(t *testing.T) {
	dir := t.TempDir()
	s, m := open(t, dir, 0)
	id := s.StreamID()
	if len(id) != 32 {
		t.Fatalf("stream id %q: want 32 hex digits", id)
	}
	for i := 1; i <= 5; i++ {
		b := batch(i)
		seq, err := s.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i) || b.Seq != seq {
			t.Fatalf("append %d: seq %d (batch %d)", i, seq, b.Seq)
		}
	}
	if got := sensortest.Value(m.BatchesSpooled); got != 5 {
		t.Errorf("batches spooled metric %v, want 5", got)
	}
	b, err := s.Read(3)
	if err != nil {
		t.Fatal(err)
	}
	if b.GetSeq() != 3 || len(b.GetFlows()) != 3 {
		t.Fatalf("read 3: seq %d, %d flows", b.GetSeq(), len(b.GetFlows()))
	}
	for _, seq := range []uint64{2, 4} {
		if found, err := s.Ack(seq); err != nil || !found {
			t.Fatalf("ack %d: %v %v", seq, found, err)
		}
	}
	if found, _ := s.Ack(2); found {
		t.Error("second ack of 2 found the batch again")
	}
	if _, err := s.Read(2); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("read acked batch: %v, want ErrNotFound", err)
	}
	if next, ok := s.Next(1); !ok || next != 3 {
		t.Errorf("Next(1) = %d %v, want 3", next, ok)
	}
	s.Close()

	// Restart: the same stream id, the unacked batches, seqs continue.
	s2, _ := open(t, dir, 0)
	if s2.StreamID() != id {
		t.Errorf("stream id changed across restart: %s → %s", id, s2.StreamID())
	}
	if got := s2.Seqs(); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Errorf("seqs after restart %v, want [1 3 5]", got)
	}
	seq, err := s2.Append(batch(1))
	if err != nil || seq != 6 {
		t.Errorf("append after restart: seq %d %v, want 6", seq, err)
	}
}

func TestSpoolSeqSurvivesRestartWhenEmpty(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 0)
	for i := 0; i < 3; i++ {
		if _, err := s.Append(batch(1)); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := s.Ack(seq); err != nil {
			t.Fatal(err)
		}
	}
	id := s.StreamID()
	s.Close()
	s2, _ := open(t, dir, 0)
	if s2.Stats().Batches != 0 {
		t.Fatalf("spool not empty: %+v", s2.Stats())
	}
	if seq, err := s2.Append(batch(1)); err != nil || seq != 4 {
		t.Errorf("first seq after restart with an empty spool: %d %v, want 4", seq, err)
	}
	if s2.StreamID() != id {
		t.Error("stream id changed")
	}
}

func TestSpoolSeqCounterLostStartsNewStream(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 0)
	for i := 0; i < 2; i++ {
		if _, err := s.Append(batch(1)); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = s.Ack(1)
	_, _ = s.Ack(2)
	id := s.StreamID()
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, spool.SeqFile), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(t, dir, 0)
	if s2.StreamID() == id {
		t.Error("seq counter lost but the stream id was kept: seqs could repeat")
	}
}

func TestSpoolBoundedDropsOldest(t *testing.T) {
	dir := t.TempDir()
	var logs logBuf
	m := metrics.New(prometheus.NewRegistry())
	one, err := spool.Encode(&flowfleetv1.FlowBatch{Seq: 1, Flows: batch(20).Flows, Drops: &flowfleetv1.DropCounters{KernelPackets: 1}})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(one))
	s, err := spool.Open(spool.Options{Dir: dir, MaxBytes: 3*size + size/2, Metrics: m, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 6; i++ {
		b := batch(20)
		b.Drops = &flowfleetv1.DropCounters{KernelPackets: 1}
		if _, err := s.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Seqs(); !slices.Equal(got, []uint64{4, 5, 6}) {
		t.Fatalf("seqs %v, want the newest three [4 5 6]", got)
	}
	st := s.Stats()
	if st.Bytes != 3*size {
		t.Errorf("spool bytes %d, want %d", st.Bytes, 3*size)
	}
	if got := sensortest.Value(m.SpoolDroppedBatches); got != 3 {
		t.Errorf("dropped batches metric %v, want 3", got)
	}
	if got := sensortest.Value(m.SpoolDroppedFlows); got != 60 {
		t.Errorf("dropped flows metric %v, want 60", got)
	}
	if got := sensortest.Value(m.SpoolBytes); got != float64(3*size) {
		t.Errorf("spool bytes gauge %v", got)
	}
	l := s.TakeLosses()
	if l.Batches != 3 || l.Flows != 60 || l.Drops.KernelPackets != 3 {
		t.Errorf("losses %+v, want 3 batches, 60 flows, 3 kernel packets carried", l)
	}
	if l := s.TakeLosses(); l != (spool.Losses{}) {
		t.Errorf("losses not reset: %+v", l)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "spool full") || !strings.Contains(out, "first_seq=1") ||
		!strings.Contains(out, "last_seq=1") {
		t.Errorf("no warning naming the dropped seqs:\n%s", out)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	if len(entries) != 3 {
		t.Errorf("%d batch files on disk, want 3", len(entries))
	}
}

func TestSpoolNewestKeptEvenIfLargerThanLimit(t *testing.T) {
	s, _ := open(t, t.TempDir(), 100)
	for i := 0; i < 2; i++ {
		if _, err := s.Append(batch(50)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Seqs(); !slices.Equal(got, []uint64{2}) {
		t.Errorf("seqs %v, want [2]", got)
	}
}

func TestSpoolCorruptFilesMovedAside(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 0)
	for i := 0; i < 5; i++ {
		if _, err := s.Append(batch(2)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	name := func(seq int) string {
		return filepath.Join(dir, strings.Repeat("0", 19)+string(rune('0'+seq))+".batch")
	}
	// 1: flipped payload byte (CRC); 2: truncated; 3: bad magic; 5: valid header and CRC over garbage protobuf.
	data, _ := os.ReadFile(name(1))
	data[len(data)-1] ^= 0xff
	must(t, os.WriteFile(name(1), data, 0o600))
	data, _ = os.ReadFile(name(2))
	must(t, os.WriteFile(name(2), data[:len(data)-3], 0o600))
	data, _ = os.ReadFile(name(3))
	copy(data, "XXXX")
	must(t, os.WriteFile(name(3), data, 0o600))
	garbage := []byte{0xff, 0xff, 0xff}
	enc := encodeRaw(5, garbage)
	must(t, os.WriteFile(name(5), enc, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "junk.batch"), []byte("x"), 0o600))

	var logs logBuf
	m := metrics.New(prometheus.NewRegistry())
	s2, err := spool.Open(spool.Options{Dir: dir, Metrics: m, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatalf("a spool with corrupt files must still open: %v", err)
	}
	defer s2.Close()
	if got := s2.Seqs(); !slices.Equal(got, []uint64{4}) {
		t.Errorf("seqs %v, want [4]", got)
	}
	if got := sensortest.Value(m.SpoolCorruptFiles); got != 5 {
		t.Errorf("corrupt files metric %v, want 5", got)
	}
	moved, _ := os.ReadDir(filepath.Join(dir, spool.CorruptDir))
	if len(moved) != 5 {
		t.Errorf("%d files in corrupt/, want 5", len(moved))
	}
	if !strings.Contains(logs.String(), "corrupt spool file moved aside") {
		t.Errorf("corrupt files not logged:\n%s", logs.String())
	}
	if seq, err := s2.Append(batch(1)); err != nil || seq != 6 {
		t.Errorf("append after corrupt scan: %d %v, want 6", seq, err)
	}
}

func TestSpoolCorruptDirBounded(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 0)
	s.Close()
	for round := 0; round < 3; round++ {
		for i := 0; i < 60; i++ {
			must(t, os.WriteFile(filepath.Join(dir, strings.Repeat("0", 17)+string(rune('1'+round))+
				string(rune('0'+i/10))+string(rune('0'+i%10))+".batch"), []byte("bad"), 0o600))
		}
		s, err := spool.Open(spool.Options{Dir: dir, Logger: sensortest.QuietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	moved, _ := os.ReadDir(filepath.Join(dir, spool.CorruptDir))
	if len(moved) != spool.DefaultMaxCorrupt {
		t.Errorf("%d files kept in corrupt/, want %d", len(moved), spool.DefaultMaxCorrupt)
	}
}

func TestSpoolReadDetectsCorruptionAfterOpen(t *testing.T) {
	dir := t.TempDir()
	s, m := open(t, dir, 0)
	if _, err := s.Append(batch(3)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, strings.Repeat("0", 19)+"1.batch")
	data, _ := os.ReadFile(p)
	data[30] ^= 1
	must(t, os.WriteFile(p, data, 0o600))
	if _, err := s.Read(1); !errors.Is(err, spool.ErrCorrupt) {
		t.Fatalf("read: %v, want ErrCorrupt", err)
	}
	if s.Stats().Batches != 0 || sensortest.Value(m.SpoolCorruptFiles) != 1 {
		t.Errorf("corrupt batch still in spool: %+v", s.Stats())
	}
	if l := s.TakeLosses(); l.Flows != 3 {
		t.Errorf("losses %+v, want 3 flows", l)
	}
}

func TestSpoolLockedAgainstSecondOpen(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, 0)
	if _, err := spool.Open(spool.Options{Dir: dir, Logger: sensortest.QuietLogger()}); err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
}

func TestSpoolTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 0)
	s.Close()
	must(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600))
	open(t, dir, 0)
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Error("temporary file left behind")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
