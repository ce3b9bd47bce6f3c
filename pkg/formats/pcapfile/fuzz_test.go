//go:build unix

package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// update regenerates the seed corpus in testdata/fuzz/FuzzReader.
var update = flag.Bool("update", false, "regenerate the fuzz seed corpus in testdata/fuzz")

const fuzzTimeLimit = time.Second

// withinLimit runs fn and fails the input when it uses more than fuzzTimeLimit of CPU time. CPU time,
// not wall time, because the fuzzers share the machine with other work and a loaded machine would
// otherwise fail innocent inputs. An input that never returns is caught by the watchdog (wall time),
// which crashes the process; the fuzzer then records the input.
func withinLimit(t *testing.T, fn func()) {
	t.Helper()
	watchdog := time.AfterFunc(30*fuzzTimeLimit, func() {
		panic(fmt.Sprintf("fuzz input still running after %v", 30*fuzzTimeLimit))
	})
	wall, cpu := time.Now(), cpuTime()
	fn()
	watchdog.Stop()
	if used := cpuTime() - cpu; used > fuzzTimeLimit {
		t.Fatalf("input used %v of CPU (%v wall), more than %v", used, time.Since(wall), fuzzTimeLimit)
	}
}

// cpuTime returns the CPU time (user and system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readerSeeds are small captures of every kind the reader knows.
func readerSeeds() map[string][]byte {
	le, be := binary.LittleEndian, binary.BigEndian
	usec := newPcap(le, 0xa1b2c3d4, 65535, 1)
	usec.add(1617652286, 246050, frameOf(60, 1))
	usec.add(1617652287, 1, frameOf(42, 2))
	nsec := newPcap(be, 0xa1b23c4d, 100, 113)
	nsec.add(1, 999999999, frameOf(120, 3)) // cut to the snapshot length
	mod := newPcap(le, 0xa1b2cd34, 0, 1)
	mod.add(5, 6, frameOf(50, 4))
	cut := newPcap(le, 0xa1b2c3d4, 65535, 101)
	cut.add(1, 0, frameOf(40, 5))
	cutBytes := cut.buf.Bytes()[:cut.buf.Len()-3]
	big := newPcap(le, 0xa1b2c3d4, 65535, 1)
	big.record(1, 0, 262145, frameOf(8, 6))

	ng := &ngFile{order: le}
	ng.section()
	ng.iface(1, 0, -1)
	ng.iface(101, 64, 9)
	ng.block(4, nil)
	ng.epb(0, 1617652286000000, frameOf(60, 7))
	ng.epb(1, 1617652286000000123, frameOf(80, 8))
	ng.spb(20, frameOf(24, 9))
	ng2 := &ngFile{order: be}
	ng2.section()
	ng2.iface(276, 0, 0x80|20)
	ng2.epb(0, 3<<20, frameOf(30, 10))
	two := append(bytes.Clone(ng.buf.Bytes()), ng2.buf.Bytes()...)

	return map[string][]byte{
		"pcap-usec-le": usec.buf.Bytes(), "pcap-nsec-be-snaplen": nsec.buf.Bytes(), "pcap-modified": mod.buf.Bytes(),
		"pcap-cut": cutBytes, "pcap-caplen-too-big": big.buf.Bytes(), "pcapng-two-sections": two,
		"pcapng-header-only": ng.buf.Bytes()[:28], "not-a-capture": []byte("#separator \\x09\n"),
	}
}

// FuzzReader reads arbitrary file bytes: reading must terminate, never panic, never return a frame longer
// than 262144 bytes (R-PCAP-2), consume at least one byte per frame, and give the same frames from memory
// (NewBytesReader) and read ahead in batches (NewBatchReader) as through a bufio.Reader (NewReader).
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		withinLimit(t, func() {
			stream := collect(t, data, func() (*Reader, error) { return NewReader(bytes.NewReader(data)) })
			mem := collect(t, data, func() (*Reader, error) { return NewBytesReader(data) })
			batch := readResult{}
			if br, err := NewBatchReader(bytes.NewReader(data)); err != nil {
				batch.err = err
			} else {
				batch.frames, batch.err = readBatches(t, br, false)
				br.Close()
			}
			for _, other := range []struct {
				name string
				res  readResult
			}{{"bytes", mem}, {"batch", batch}} {
				if len(stream.frames) != len(other.res.frames) || (stream.err == nil) != (other.res.err == nil) {
					t.Fatalf("stream reader: %d frames, %v; %s reader: %d frames, %v", len(stream.frames), stream.err,
						other.name, len(other.res.frames), other.res.err)
				}
				for i := range stream.frames {
					a, b := stream.frames[i], other.res.frames[i]
					if a.Sec != b.Sec || a.Usec != b.Usec || a.Link != b.Link || a.Offset != b.Offset || !bytes.Equal(a.Data, b.Data) {
						t.Fatalf("frame %d differs between the stream and %s readers", i, other.name)
					}
				}
			}
		})
	})
}

type readResult struct {
	frames []Frame
	err    error
}

func collect(t *testing.T, data []byte, open func() (*Reader, error)) readResult {
	t.Helper()
	rd, err := open()
	if err != nil {
		if !errors.Is(err, ErrNotCapture) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnreadable) {
			t.Fatalf("NewReader: unexpected error %v", err)
		}
		return readResult{err: err}
	}
	var res readResult
	for i := 0; ; i++ {
		if i > len(data) {
			t.Fatalf("more frames (%d) than bytes (%d)", i, len(data))
		}
		fr, err := rd.Next()
		if err == io.EOF {
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		if len(fr.Data) > maxSnaplen {
			t.Fatalf("frame %d is %d bytes long", i, len(fr.Data))
		}
		if rd.ng && fr.Usec >= 1_000_000 { // classic pcap passes the record's field through, like libpcap
			t.Fatalf("frame %d: %d microseconds", i, fr.Usec)
		}
		fr.Data = bytes.Clone(fr.Data)
		res.frames = append(res.frames, fr)
	}
}

// TestFuzzSeeds writes the seed corpus with -update; without it, checks that it exists.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	for name, b := range readerSeeds() {
		path := filepath.Join(dir, "seed-"+name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if _, err := os.Stat(path); err != nil {
			t.Errorf("seed %s missing (run go test -run TestFuzzSeeds -update): %v", path, err)
		}
	}
}
