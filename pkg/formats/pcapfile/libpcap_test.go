package pcapfile

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// libpcapFrame is a frame as tcpdump -tt -xx prints it: libpcap's time (microseconds) and bytes.
type libpcapFrame struct {
	sec, usec uint64
	data      []byte
	unknown   bool // tcpdump printed "[Invalid header: …]" instead: libpcap delivered it, tcpdump hid it
	noTime    bool // tcpdump could not print the time (out of its range)
}

// readWithLibpcap reads a capture file with tcpdump (so with libpcap): its frames, and whether libpcap
// refused to open the file.
func readWithLibpcap(t *testing.T, path string) (frames []libpcapFrame, refused, incomparable bool) {
	t.Helper()
	cmd := exec.Command("tcpdump", "-n", "-tt", "-xx", "-r", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "\t0x") {
			if len(frames) == 0 {
				t.Fatalf("%s: tcpdump printed bytes before a packet: %q", path, line)
			}
			_, hexPart, _ := strings.Cut(line, ":  ")
			hexPart, _, _ = strings.Cut(hexPart, "  ") // an ASCII column may follow, for unknown link types
			hexPart = strings.ReplaceAll(hexPart, " ", "")
			b, err := hex.DecodeString(hexPart)
			if err != nil {
				t.Fatalf("%s: tcpdump hex line %q: %v", path, line, err)
			}
			f := &frames[len(frames)-1]
			if strings.HasPrefix(line, "\t0x0000:") {
				f.data = f.data[:0] // some printers dump the packet first; -xx's dump comes last
			}
			f.data = append(f.data, b...)
			continue
		}
		if strings.HasPrefix(line, "[Invalid header") {
			frames = append(frames, libpcapFrame{unknown: true})
			continue
		}
		if strings.HasPrefix(line, "[Error converting time]") {
			frames = append(frames, libpcapFrame{noTime: true})
			continue
		}
		stamp, _, _ := strings.Cut(line, " ")
		secText, usecText, ok := strings.Cut(stamp, ".")
		sec, err1 := strconv.ParseUint(secText, 10, 64)
		usec, err2 := strconv.ParseUint(usecText, 10, 32)
		if !ok || err1 != nil || err2 != nil || len(usecText) < 6 { // more digits: classic pcap passes the field through
			t.Fatalf("%s: tcpdump line %q is neither a packet nor its bytes", path, line)
		}
		frames = append(frames, libpcapFrame{sec: sec, usec: usec})
	}
	// Opening failed: tcpdump says so before "reading from file"; a read error comes as "pcap_loop: …".
	refused = !strings.Contains(stderr.String(), "reading from file")
	// tcpdump itself (not libpcap) gives up on link types it does not know.
	incomparable = strings.Contains(stderr.String(), "unknown data link type")
	return frames, refused, incomparable
}

// mutate returns a copy of b with a few random changes: bytes overwritten, a length field made
// larger or smaller, the file cut, a block repeated.
func mutate(rng *rand.Rand, b []byte) []byte {
	out := bytes.Clone(b)
	for n := 1 + rng.IntN(3); n > 0 && len(out) > 0; n-- {
		switch rng.IntN(5) {
		case 0:
			out[rng.IntN(len(out))] = byte(rng.IntN(256))
		case 1: // a small 32-bit field nudged: lengths, versions, link types, interface ids
			i := rng.IntN(len(out)) &^ 3
			if i+4 <= len(out) {
				out[i] += byte(rng.IntN(9)) - 4
			}
		case 2:
			out = out[:rng.IntN(len(out)+1)]
		case 3: // a stretch repeated
			i := rng.IntN(len(out))
			j := min(len(out), i+4*rng.IntN(64))
			out = append(out[:j:j], append(bytes.Clone(out[i:j]), out[j:]...)...)
		default:
			out[rng.IntN(len(out))] ^= 1 << rng.IntN(8)
		}
	}
	return out
}

// gopacketCaptures returns the capture files that ship with gopacket's pcapgo: the pcapng test suite
// (pcapng-test-generator), big- and little-endian, with several sections, interfaces and block types.
func gopacketCaptures(t *testing.T) []string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/gopacket").Output()
	if err != nil {
		t.Logf("gopacket's module directory: %v", err)
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "pcapgo", "tests", "*", "*.pcapng"))
	return files
}

// R-PCAP-1, R-PCAP-2: "Frames are read as libpcap delivers them." The reader is compared with libpcap
// itself (through tcpdump) on gopacket's pcapng test suite, the reader's fuzz seeds, random mutations of
// both and the public conformance captures (when the corpus is there), whole and cut: the same frames,
// times and bytes up to the same point, and the same files refused. tcpdump comes with .ci/run
// (scripts/setup.sh).
func TestReaderAgreesWithLibpcap(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump (libpcap) is not installed: scripts/setup.sh installs it")
	}
	var corpus [][]byte
	for _, b := range readerSeeds() {
		corpus = append(corpus, b)
	}
	for _, p := range gopacketCaptures(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, b)
	}
	if len(corpus) < 20 {
		t.Fatalf("only %d captures to compare", len(corpus))
	}
	rng := rand.New(rand.NewPCG(11, 12))
	inputs := append([][]byte(nil), corpus...)
	// The public conformance captures (real traffic, pcap and pcapng), whole and cut at random points.
	real, _ := filepath.Glob(filepath.Join("..", "..", "..", "..", "shared", "conformance", "inputs", "*"))
	for _, p := range real {
		b, err := os.ReadFile(p)
		if err != nil || !IsCapture(b) {
			continue
		}
		inputs = append(inputs, b, b[:rng.IntN(len(b))], b[:rng.IntN(len(b))])
	}
	mutations := 1500 // FLOWFLEET_LIBPCAP_MUTATIONS=N for a deeper run
	if n, err := strconv.Atoi(os.Getenv("FLOWFLEET_LIBPCAP_MUTATIONS")); err == nil {
		mutations = n
	} else if testing.Short() {
		mutations = 150
	}
	for i := 0; i < mutations; i++ {
		inputs = append(inputs, mutate(rng, corpus[rng.IntN(len(corpus))]))
	}
	dir := t.TempDir()
	compared, differ := 0, 0
	for i, data := range inputs {
		if !IsCapture(data) {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("in%04d", i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want, refused, incomparable := readWithLibpcap(t, path)
		if incomparable {
			continue
		}
		got, openErr, err := readOpened(t, data)
		compared++
		problem := ""
		switch {
		case refused != (openErr != nil || errors.Is(err, ErrUnreadable) && len(got) == 0):
			problem = fmt.Sprintf("libpcap refused it: %v; the reader: %d frames, %v", refused, len(got), err)
		case len(got) != len(want):
			problem = fmt.Sprintf("%d frames, libpcap %d (reader stopped with %v)", len(got), len(want), err)
		default:
			for j := range want {
				g, w := got[j], want[j]
				if w.unknown {
					continue
				}
				if g.Sec < 1<<31 && !w.noTime && (g.Sec != w.sec || uint64(g.Usec) != w.usec) || !bytes.Equal(g.Data, w.data) {
					problem = fmt.Sprintf("frame %d: %d.%06d %d bytes, libpcap %d.%06d %d bytes", j, g.Sec, g.Usec,
						len(g.Data), w.sec, w.usec, len(w.data))
					break
				}
			}
		}
		if problem != "" {
			differ++
			if differ <= 10 {
				t.Errorf("input %d (%d bytes): %s", i, len(data), problem)
				_ = os.WriteFile(filepath.Join(os.TempDir(), fmt.Sprintf("libpcap-diff-%04d.pcap", i)), data, 0o644)
			}
		}
	}
	t.Logf("%d captures compared with libpcap, %d differ", compared, differ)
}

// readOpened reads every frame, telling an error opening the file from one reading it.
func readOpened(t *testing.T, data []byte) (frames []Frame, openErr, err error) {
	t.Helper()
	rd, openErr := NewReader(bytes.NewReader(data))
	if openErr != nil {
		return nil, openErr, nil
	}
	for {
		f, err := rd.Next()
		if err == io.EOF {
			return frames, nil, nil
		}
		if err != nil {
			return frames, nil, err
		}
		f.Data = bytes.Clone(f.Data)
		frames = append(frames, f)
	}
}
