//go:build unix

package flow

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fuzz targets of the packet path (STYLE §8: a Fuzz* target for every parser, seeds in testdata/fuzz,
// a per-input time check). Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzEnginePacket$' -fuzztime 120s ./pkg/flow/

// update regenerates the seed corpora in testdata/fuzz from the synthetic inputs below.
var update = flag.Bool("update", false, "regenerate the fuzz seed corpora in testdata/fuzz")

// fuzzTimeLimit is the most one input may take.
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

// fuzzLinks are the link types a fuzzed frame can be offered as.
var fuzzLinks = []LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkRaw, LinkIPv4, LinkIPv6, LinkNull, LinkLoop}

// encodeFrames lays frames out as FuzzEnginePacket reads them: one options byte, then per frame a
// link-type byte, a time byte and a 2-byte length.
func encodeFrames(opts byte, frames ...in) []byte {
	b := []byte{opts}
	for _, f := range frames {
		li := 0
		for i, l := range fuzzLinks {
			if l == f.link {
				li = i
			}
		}
		n := len(f.data)
		b = append(b, byte(li), byte(int(f.t)%256), byte(n>>8), byte(n))
		b = append(b, f.data...)
	}
	return b
}

// decodeFrames is the inverse of encodeFrames for arbitrary bytes.
func decodeFrames(data []byte) (Options, []in) {
	if len(data) == 0 {
		return Options{}, nil
	}
	opts := Options{DecodeVLAN: data[0]&1 != 0, SessionNames: data[0]&2 != 0}
	if data[0]&4 != 0 {
		opts.MaxFlows = 3
	}
	data = data[1:]
	var frames []in
	for len(data) >= 4 {
		link := fuzzLinks[int(data[0])%len(fuzzLinks)]
		t := 1617652286.0 + float64(data[1])*0.25
		n := int(data[2])<<8 | int(data[3])
		data = data[4:]
		if n > len(data) {
			n = len(data)
		}
		frames = append(frames, in{link, t, data[:n]})
		data = data[n:]
	}
	return opts, frames
}

// engineSeeds are small synthetic captures covering the decoder's branches.
func engineSeeds() map[string][]byte {
	m := newMsg(responseFlags, 1, 2, 0, 0)
	q := m.question(labels("www.example.com"), 1)
	c := m.rr(q, 5, labels("edge.cdn.net"))
	m.rr(c, 1, ipBytes("93.184.216.34"))
	dns := dnsFrame("192.168.1.1", "192.168.1.2", m.b)
	tcp := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, clientHello("www.example.com"))))
	back := ether4(ipv4(6, "93.184.216.34", "192.168.1.2", tcpSeg(443, 50000, make([]byte, 10))))
	udp := ether4(ipv4(17, "192.168.1.2", "93.184.216.34", udpDgram(50000, 443, make([]byte, 5))))
	icmp := pad(ether4(ipv4(1, "192.168.1.2", "8.8.8.8", icmpEcho(8, nil))), 60)
	greF := ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x0800, ipv4(1, "1.1.1.1", "2.2.2.2", icmpEcho(8, make([]byte, 8))))))
	ipip := ether6(ipv6(4, "2001:db8::1", "2001:db8::2", ipv4(47, "10.1.0.1", "10.1.0.2", gre(0x6558, ether4(ipv4(17, "8.8.4.4", "9.9.9.9", udpDgram(3000, 4000, nil)))))))
	igmp := sll(0x0800, v4{proto: 2, src: "192.168.1.10", dst: "224.0.0.22", opts: []byte{0x94, 4, 0, 0}}.build([]byte{0x22, 0, 0, 0, 0, 0, 0, 0}))
	v6 := ether6(ipv6(58, "2001:470:1:18::3:1280", "2607:fb90::1", icmpEcho(128, make([]byte, 12))))
	hbh := ether6(ipv6(0, "fe80::1", "ff02::16", append([]byte{58, 0, 5, 2, 0, 0, 1, 0}, icmpEcho(143, nil)...)))
	http := ether4(ipv4(6, "192.168.1.2", "93.184.216.35", tcpSeg(50001, 80, []byte("GET / HTTP/1.1\r\nHost: example.com:80\r\n\r\n"))))
	return map[string][]byte{
		"dns-then-tls":   encodeFrames(2, ethAt(0, dns), ethAt(1, tcp), ethAt(2, back), ethAt(3, http)),
		"udp-tcp-same":   encodeFrames(0, ethAt(5, tcp), ethAt(6, udp), ethAt(4, icmp)),
		"tunnels":        encodeFrames(0, ethAt(1, greF), ethAt(1, ipip)),
		"cooked-igmp":    encodeFrames(0, in{LinkLinuxSLL, 1, igmp}, in{LinkLinuxSLL2, 2, sll2(0x86DD, ipv6(17, "2001:db8::1", "2001:db8::2", udpDgram(1, 2, nil)))}),
		"raw-links":      encodeFrames(4, in{LinkRaw, 1, ipv4(17, "10.0.0.1", "8.8.8.8", udpDgram(5, 53, nil))}, in{LinkIPv6, 2, ipv6(6, "2001:db8::1", "2607:f8b0::2", tcpSeg(1, 2, nil))}, in{LinkNull, 3, append([]byte{2, 0, 0, 0}, ipv4(1, "10.0.0.1", "8.8.8.8", icmpEcho(8, nil))...)}, in{LinkLoop, 4, append([]byte{0, 0, 0, 24}, ipv6(17, "::1", "::2", udpDgram(1, 2, nil))...)}),
		"vlan-and-v6":    encodeFrames(1, ethAt(1, vlan(5, 0x0800, ipv4(17, "10.0.0.1", "8.8.8.8", udpDgram(53, 5000, m.b)))), ethAt(2, v6), ethAt(3, hbh)),
		"short-frames":   encodeFrames(0, ethAt(1, ether4(ipv4(6, "1.1.1.1", "2.2.2.2", nil))[:34]), ethAt(2, ether4(ipv4(6, "1.1.1.1", "2.2.2.2", tcpSeg(1, 2, nil)))[:45])),
		"empty":          {},
		"options-only":   {7},
		"garbage-length": {0, 0, 9, 0xff, 0xff, 0x08},
	}
}

// FuzzEnginePacket feeds arbitrary bytes as frames of several link types into one engine, then flushes
// it. Invariants: no panic, no flow without a source or destination address, flows sorted by
// relativeStart (R-ORD-1), relativeStart never negative (S is the earliest IP frame, R-PCAP-4), TCP and
// UDP identifiers numbered 0, 1, … in order (R-ID-1), and every flow named (R-NAME-2).
func FuzzEnginePacket(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		opts, frames := decodeFrames(data)
		withinLimit(t, func() {
			e := NewEngine(opts)
			for _, fr := range frames {
				e.Packet(fr.link, fr.t, fr.data)
			}
			// The same frames through a Pipeline, each frame's bytes overwritten once it is handed in,
			// give the same sample (the reading goroutine's buffers are reused the same way).
			piped := NewEngine(opts)
			pl := NewPipeline(piped)
			var buf []byte
			for _, fr := range frames {
				buf = append(buf[:0], fr.data...)
				pl.Packet(fr.link, fr.t, buf)
				clear(buf)
			}
			pl.Close()
			cache := NewNameCache("")
			s := e.Flush(cache)
			if ps := piped.Flush(NewNameCache("")); !reflect.DeepEqual(s, ps) || e.Stats() != piped.Stats() {
				t.Fatalf("pipeline differs from Packet:\n packet   %+v\n pipeline %+v", s, ps)
			}
			tcp, udp := 0, 0
			for i, fl := range s.Flows {
				if fl.SrcAddr == "" || fl.DstAddr == "" {
					t.Fatalf("flow %d without an address: %+v", i, fl)
				}
				if i > 0 && fl.RelativeStart < s.Flows[i-1].RelativeStart {
					t.Fatalf("flow %d out of order: %v after %v", i, fl.RelativeStart, s.Flows[i-1].RelativeStart)
				}
				if fl.RelativeStart < 0 {
					t.Fatalf("flow %d starts before S: %v", i, fl.RelativeStart)
				}
				// A name may be "" only when it is a passive name filed under Q = "" (R-DNS-7).
				if fl.NameSource == "" || fl.Name == "" && fl.NameSource != SourcePassive {
					t.Fatalf("flow %d not named: %+v", i, fl)
				}
				switch fl.Protocol {
				case ProtoTCP:
					if fl.Identifier != fmt.Sprint(tcp) {
						t.Fatalf("TCP flow %d has identifier %q, want %d", i, fl.Identifier, tcp)
					}
					tcp++
				case ProtoUDP:
					if fl.Identifier != fmt.Sprint(udp) {
						t.Fatalf("UDP flow %d has identifier %q, want %d", i, fl.Identifier, udp)
					}
					udp++
				default:
					if fl.Identifier != "" {
						t.Fatalf("flow %d: identifier %q on %q", i, fl.Identifier, fl.Protocol)
					}
				}
				if (fl.Protocol == ProtoICMP) != (fl.SrcPort == "" && fl.DstPort == "") {
					t.Fatalf("flow %d: ports %q/%q with protocol %q", i, fl.SrcPort, fl.DstPort, fl.Protocol)
				}
			}
			if len(s.Flows) > 0 && s.Start == NoStart {
				t.Fatalf("flows without a start time")
			}
		})
	})
}

// dnsSeeds are DNS messages (without the frame around them).
func dnsSeeds() map[string][]byte {
	plain := newMsg(responseFlags, 1, 1, 0, 0)
	q := plain.question(labels("www.example.com"), 1)
	plain.rr(q, 1, ipBytes("93.184.216.34"))

	chain := newMsg(responseFlags, 1, 3, 0, 0)
	q = chain.question(labels("www.example.com"), 1)
	a := chain.rr(q, 5, labels("a.cdn.net"))
	b := chain.rr(a, 5, labels("b.cdn.net"))
	chain.rr(b, 28, ipBytes("2001:db8::1"))

	ref := newMsg(responseFlags, 1, 0, 1, 2)
	q = ref.question(labels("_.dspw65.akamai.net"), 1)
	ns := ref.rr(q, 2, labels("n6dspw65.akamai.net"))
	ref.rr(ns, 1, ipBytes("23.59.251.221"))
	ref.raw([]byte{0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0})

	loop := newMsg(responseFlags, 1, 1, 0, 0)
	q = loop.question(labels("loop.example"), 1)
	loop.rr(len(loop.b), 5, []byte{0xC0, 12})

	odd := newMsg(responseFlags, 1, 1, 0, 0)
	q = odd.question(append(append([]byte{3, 'w', 'w', 'w', 45}, strings.Repeat("a", 45)...), 1, 0xff, 0), 1)
	odd.rr(q, 1, ipBytes("1.2.3.4"))

	ptr := newMsg(responseFlags, 1, 1, 0, 0)
	q = ptr.question(labels("4.3.2.1.in-addr.arpa"), 12)
	ptr.rr(q, 12, labels("host.example"))

	multi := newMsg(responseFlags, 3, 0, 0, 0)
	multi.question(labels("a.example"), 1)
	multi.question(labels("b.example"), 28)
	multi.question(labels("c.example"), 12)

	return map[string][]byte{
		"plain": plain.b, "cname-chain": chain.b, "referral-glue-opt": ref.b, "pointer-loop": loop.b,
		"odd-labels": odd.b, "ptr": ptr.b, "multi-question": multi.b, "header-only": newMsg(responseFlags, 0, 0, 0, 0).b,
	}
}

// FuzzDNSWalk runs the reference's DNS walker (section 4) on arbitrary message bytes behind a UDP header.
// It must terminate quickly (compression loops included, R-DNS-6) and file only names ending in "." and
// answers that are address texts.
func FuzzDNSWalk(f *testing.F) {
	f.Fuzz(func(t *testing.T, msgBytes []byte) {
		withinLimit(t, func() {
			table := NewAnswerTable()
			var w dnsWalker
			frame := dnsFrame("192.168.1.1", "192.168.1.2", msgBytes)
			w.walk(table, frame, 42, 1)
			w.walk(table, msgBytes, 0, 2) // the same bytes as a frame of their own
			_, _ = name(msgBytes, msgBytes, false, 0)
			for _, n := range table.names {
				if !strings.HasSuffix(n, ".") {
					t.Fatalf("name %q does not end in '.'", n)
				}
			}
			table.Each(func(n string, a Answer) {
				ip, ok := ParseAddr(a.Answer)
				if !ok || AddrText(ip) != a.Answer {
					t.Fatalf("answer %q under %q is not an address text", a.Answer, n)
				}
			})
		})
	})
}

// sessionSeeds are TLS and HTTP first payloads.
func sessionSeeds() map[string][]byte {
	return map[string][]byte{
		"tls":       clientHello("www.example.com"),
		"tls-two":   clientHello("a.example", "b.example"),
		"tls-empty": clientHello(),
		"http":      []byte("GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n"),
		"http-v6":   []byte("POST /x HTTP/1.1\r\nhost: [::1]:80\r\n\r\n"),
		"garbage":   {0x16, 3, 1, 0, 5, 1, 0, 0, 1},
		"ssh":       []byte("SSH-2.0-OpenSSH_9.0\r\n"),
	}
}

// validHostName is what SessionName may return: 1–253 characters, dot-separated labels of 1–63
// lower-case letters, digits, '-' or '_'.
func validHostName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// FuzzSessionName checks the TLS SNI and HTTP Host parsers: the result is "" or a valid host name.
func FuzzSessionName(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		withinLimit(t, func() {
			if n := SessionName(payload); n != "" && !validHostName(n) {
				t.Fatalf("SessionName returned %q", n)
			}
		})
	})
}

// TestFuzzSeeds writes the seed corpora with -update (the files are committed; crashers the fuzzer finds
// are added next to them and kept as regression seeds). Without -update it checks that they exist.
func TestFuzzSeeds(t *testing.T) {
	writeSeeds(t, "FuzzEnginePacket", engineSeeds())
	writeSeeds(t, "FuzzDNSWalk", dnsSeeds())
	writeSeeds(t, "FuzzSessionName", sessionSeeds())
}

func writeSeeds(t *testing.T, target string, seeds map[string][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	for name, b := range seeds {
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
