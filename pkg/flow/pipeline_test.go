package flow

import (
	"fmt"
	"reflect"
	"testing"
)

// pipelineFrames makes a mixed stream of several thousand frames: many TCP and UDP conversations
// (some answered, some seen from both sides), DNS answers naming some of them, TLS ClientHellos and
// HTTP requests for session names, a GRE tunnel (a later pass, R-PKT-2), ICMP, IPv6, short frames and
// non-IP frames.
func pipelineFrames() []in {
	var out []in
	t := 1_700_000_000.0
	add := func(data []byte) {
		t += 0.000137
		out = append(out, ethAt(t, data))
	}
	for i := 0; i < 6000; i++ {
		host := fmt.Sprintf("192.168.%d.%d", i/200, 1+i%200)
		server := fmt.Sprintf("93.184.%d.%d", i%7, 1+i%50)
		sport := uint16(40000 + i)
		if i%5 == 0 {
			m := newMsg(responseFlags, 1, 1, 0, 0)
			q := m.question(labels(fmt.Sprintf("svc%d.example.com", i%50)), 1)
			m.rr(q, 1, ipBytes(server))
			add(dnsFrame("192.168.0.1", host, m.b))
		}
		switch i % 6 {
		case 0, 1:
			add(ether4(ipv4(6, host, server, tcpSegHL(sport, 443, 20, 0x02, nil))))
			add(ether4(ipv4(6, server, host, tcpSegHL(443, sport, 20, 0x12, nil))))
			add(ether4(ipv4(6, host, server, tcpSeg(sport, 443, clientHello(fmt.Sprintf("tls%d.example.net", i))))))
			add(ether4(ipv4(6, server, host, tcpSeg(443, sport, make([]byte, 900)))))
		case 2:
			add(ether4(ipv4(6, host, server, tcpSeg(sport, 80, []byte(fmt.Sprintf("GET / HTTP/1.1\r\nHost: web%d.example.org\r\n\r\n", i))))))
			add(ether4(ipv4(6, server, host, tcpSeg(80, sport, make([]byte, 1200)))))
		case 3:
			add(ether4(ipv4(17, host, server, udpDgram(sport, 123, make([]byte, 48)))))
			add(ether4(ipv4(47, "10.9.0.1", "10.9.0.2", gre(0x0800, ipv4(17, host, server, udpDgram(sport, 123, make([]byte, 48)))))))
		case 4:
			add(ether4(ipv4(1, host, server, icmpEcho(8, make([]byte, 56)))))
			add(ether6(ipv6(17, "2001:db8::1", fmt.Sprintf("2001:db8::%x", i), udpDgram(sport, 443, make([]byte, 1200)))))
		case 5:
			add(ether4(ipv4(6, host, server, tcpSeg(sport, 22, make([]byte, 10)))[:34]))
			add(eth(0x0806, make([]byte, 28)))
		}
	}
	return out
}

// A Pipeline gives exactly what Engine.Packet gives, frame for frame, session names included.
func TestPipelineEqualsPacket(t *testing.T) {
	frames := pipelineFrames()
	if len(frames) < 5*pipelineBatch {
		t.Fatalf("only %d frames: the test must span several batches", len(frames))
	}
	for _, opts := range []Options{{}, {SessionNames: true, DecodeVLAN: true}} {
		direct := NewEngine(opts)
		for _, f := range frames {
			direct.Packet(f.link, f.t, f.data)
		}
		piped := NewEngine(opts)
		pl := NewPipeline(piped)
		var buf []byte
		for _, f := range frames {
			// Like a capture reader, reuse one buffer: the pipeline must not keep the frame's bytes.
			buf = append(buf[:0], f.data...)
			pl.Packet(f.link, f.t, buf)
			for i := range buf {
				buf[i] = 0xAA
			}
		}
		pl.Close()
		pl.Close() // a second Close is harmless
		if a, b := direct.Stats(), piped.Stats(); a != b {
			t.Errorf("%+v: stats differ:\n direct %+v\n piped  %+v", opts, a, b)
		}
		want, got := direct.Flush(nil), piped.Flush(nil)
		if len(want.Flows) < 1000 {
			t.Fatalf("only %d flows", len(want.Flows))
		}
		sessions := 0
		for _, f := range want.Flows {
			if f.NameSource == SourceSession {
				sessions++
			}
		}
		if opts.SessionNames && sessions < 1000 {
			t.Errorf("only %d flows named from sessions", sessions)
		}
		if !reflect.DeepEqual(want, got) {
			for i := range want.Flows {
				if i >= len(got.Flows) || want.Flows[i] != got.Flows[i] {
					t.Fatalf("%+v: flow %d differs:\n direct %+v\n piped  %+v", opts, i, want.Flows[i], got.Flows[min(i, len(got.Flows)-1)])
				}
			}
			t.Fatalf("%+v: samples differ (start %v vs %v, %d vs %d flows)", opts, want.Start, got.Start, len(want.Flows), len(got.Flows))
		}
	}
}
