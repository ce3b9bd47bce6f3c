//go:build unix

package zeek

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// update regenerates the seed corpus in testdata/fuzz/FuzzRead.
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

// readSeeds are conn.log/dns.log pairs in both syntaxes.
func readSeeds() map[string][2][]byte {
	tsvConn := tsv(
		conn{ts: "100.0", uid: "C1", service: "dns", ob: "37", rb: "76", opk: "1", rpk: "1", dur: "0.023223", proto: "udp", rp: "53"},
		conn{ts: "101.0", uid: "C2", hist: "AadfR", ob: "1", rb: "39", opk: "4", rpk: "3"},
		conn{ts: "102.0", uid: "C3", oh: "93.184.216.34", op: "443", rh: "192.168.1.5", rp: "50000", hist: "ShADad", ob: "5", rb: "6"},
		conn{ts: "103.0", uid: "C4", proto: "icmp", op: "8", rp: "0"},
	)
	tsvDNS := dnsTSV([8]string{"99.0", "5000", "0.01", "www.example.com", "1", "1", "NOERROR", "edge.example.net,93.184.216.34"})
	jsonConn := `{"ts":100.0,"uid":"C1","id.orig_h":"192.168.1.2","id.orig_p":50000,"id.resp_h":"93.184.216.34","id.resp_p":443,"proto":"tcp","history":"D"}` + "\n" +
		`[{"ts":1618432252.101913,"uid":"C2","id.orig_h":"192.168.1.2","id.orig_p":5,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp","service":"dns","orig_bytes":32,"resp_bytes":155,"orig_pkts":1,"resp_pkts":1}]` + "\n"
	jsonDNS := `{"ts":99.0,"id.orig_p":5000,"query":"www.example.com","qclass":1,"qtype":28,"rtt":0.01,"answers":["2600:1403:9c00:30::17c1:6a8e"]}` + "\n"
	return map[string][2][]byte{
		"tsv":           {[]byte(tsvConn), []byte(tsvDNS)},
		"json":          {[]byte(jsonConn), []byte(jsonDNS)},
		"tsv-json-dns":  {[]byte(tsvConn), []byte(jsonDNS)},
		"json-tsv-dns":  {[]byte(jsonConn), []byte(tsvDNS)},
		"headers-only":  {[]byte(tsv()), nil},
		"blank-line":    {[]byte(jsonConn + "\n"), nil},
		"number-line":   {[]byte("42\n"), nil},
		"swap-collides": {[]byte(tsv(conn{ts: "1", oh: "93.184.216.34", op: "443", rh: "192.168.1.5", rp: "50000"}, conn{ts: "2", oh: "192.168.1.5", op: "50000", rh: "93.184.216.34", rp: "443"})), nil},
	}
}

// FuzzRead parses arbitrary conn.log and dns.log bytes (R-ZEEK-*, R-ZDNS-*): no panic, quick, and when it
// succeeds every flow starts no earlier than S (R-ZEEK-5) and the answers are address texts.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, connLog, dnsLog []byte) {
		withinLimit(t, func() {
			s, answers, err := Read(bytes.NewReader(connLog), "conn.log", bytes.NewReader(dnsLog), "dns.log")
			if err != nil {
				return
			}
			flow.Finalize(&s, false)
			for i, fl := range s.Flows {
				if !math.IsNaN(fl.First) && !math.IsNaN(s.Start) && fl.First < s.Start {
					t.Fatalf("flow %d starts at %v before S %v", i, fl.First, s.Start)
				}
				if fl.Protocol == flow.ProtoICMP && (fl.SrcPort != "" || fl.DstPort != "") {
					t.Fatalf("ICMP flow %d with ports %q/%q", i, fl.SrcPort, fl.DstPort)
				}
			}
			if len(s.Flows) == 0 && answers != nil && answers.Len() > 0 {
				t.Fatalf("dns.log read without flows")
			}
			if answers != nil {
				answers.Each(func(n string, a flow.Answer) {
					ip, ok := flow.ParseAddr(a.Answer)
					if !ok || flow.AddrText(ip) != a.Answer {
						t.Fatalf("answer %q under %q is not an address text", a.Answer, n)
					}
				})
			}
		})
	})
}

// TestFuzzSeeds writes the seed corpus with -update; without it, checks that it exists.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	for name, pair := range readSeeds() {
		path := filepath.Join(dir, "seed-"+name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			text := "go test fuzz v1\n[]byte(" + strconv.Quote(string(pair[0])) + ")\n[]byte(" + strconv.Quote(string(pair[1])) + ")\n"
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if _, err := os.Stat(path); err != nil {
			t.Errorf("seed %s missing (run go test -run TestFuzzSeeds -update): %v", path, err)
		}
	}
}
