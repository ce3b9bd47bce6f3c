package flow

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// benchFrame is one frame of the synthetic traffic mix.
type benchFrame struct {
	t    float64
	data []byte
}

// benchMix builds a realistic mix of `flows` flows over about a minute: 60 % TCP conversations (handshake,
// request, a few data segments, ACKs, FIN), 25 % UDP exchanges (QUIC-like, NTP-like), 15 % DNS lookups
// whose answers name later TCP flows; clients on a local /16, servers on the Internet, a few IPv6 flows.
// Frames are interleaved in time order as a capture would see them.
func benchMix(flows int) []benchFrame {
	rng := rand.New(rand.NewPCG(7, 11))
	var out []benchFrame
	base := 1700000000.0
	srv := func(i int) string {
		return fmt.Sprintf("%d.%d.%d.%d", 23+i%150, (i*7)%250, (i*13)%250, 1+(i*17)%250)
	}
	for i := 0; i < flows; i++ {
		client := fmt.Sprintf("10.%d.%d.%d", 1+i%7, (i/250)%250, 1+i%250)
		server := srv(i)
		cport := uint16(49152 + i%16000)
		t := base + rng.Float64()*60
		add := func(dt float64, frame []byte) {
			t += dt
			out = append(out, benchFrame{t, frame})
		}
		switch k := i % 20; {
		case k < 12: // TCP
			v6 := k == 0
			seg := func(fromClient bool, flags byte, n int) []byte {
				if v6 {
					if fromClient {
						return ether6(ipv6(6, "2001:db8::1", "2607:f8b0::2", tcpSegHL(cport, 443, 20, flags, make([]byte, n))))
					}
					return ether6(ipv6(6, "2607:f8b0::2", "2001:db8::1", tcpSegHL(443, cport, 20, flags, make([]byte, n))))
				}
				if fromClient {
					return ether4(ipv4(6, client, server, tcpSegHL(cport, 443, 20, flags, make([]byte, n))))
				}
				return ether4(ipv4(6, server, client, tcpSegHL(443, cport, 20, flags, make([]byte, n))))
			}
			add(0, seg(true, 0x02, 0))
			add(0.02, seg(false, 0x12, 0))
			add(0.0001, seg(true, 0x10, 0))
			add(0.0002, seg(true, 0x18, 517))
			for j := 0; j < 2+rng.IntN(6); j++ {
				add(0.01, seg(false, 0x18, 1400))
				add(0.0001, seg(true, 0x10, 0))
			}
			add(0.5, seg(true, 0x11, 0))
			add(0.02, seg(false, 0x11, 0))
		case k < 17: // UDP
			for j := 0; j < 1+rng.IntN(8); j++ {
				add(0.01, ether4(ipv4(17, client, server, udpDgram(cport, 443, make([]byte, 1200)))))
				add(0.02, ether4(ipv4(17, server, client, udpDgram(443, cport, make([]byte, 300)))))
			}
		default: // DNS lookup, answered with the server of an IPv4 TCP flow (k = 1..3)
			named := srv(i - k + 1 + (k - 17))
			q := newMsg(0x0100, 1, 0, 0, 0)
			q.question(labels(fmt.Sprintf("host%d.example.com", i)), 1)
			r := newMsg(responseFlags, 1, 2, 0, 0)
			qo := r.question(labels(fmt.Sprintf("host%d.example.com", i)), 1)
			c := r.rr(qo, 5, labels(fmt.Sprintf("edge%d.cdn.net", i%50)))
			r.rr(c, 1, ipBytes(named))
			add(0, ether4(ipv4(17, client, "10.0.0.53", udpDgram(cport, 53, q.b))))
			add(0.015, ether4(ipv4(17, "10.0.0.53", client, udpDgram(53, cport, r.b))))
		}
	}
	sortStable(out, func(x, y benchFrame) bool { return x.t < y.t })
	return out
}

// BenchmarkEnginePacket measures the engine on the synthetic mix: every frame through Packet, and a
// Flush (durations, identifiers, naming) each time the mix has been played once, as at a window end.
func BenchmarkEnginePacket(b *testing.B) {
	for _, c := range []struct {
		name  string
		flows int
		opts  Options
	}{
		{"flows_1000", 1000, Options{}},
		{"flows_10000", 10000, Options{}},
		{"flows_10000_sensor", 10000, Options{DecodeVLAN: true, SessionNames: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			frames := benchMix(c.flows)
			var bytes int64
			for _, f := range frames {
				bytes += int64(len(f.data))
			}
			e := NewEngine(c.opts)
			b.SetBytes(bytes / int64(len(frames)))
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				f := frames[n%len(frames)]
				e.Packet(LinkEthernet, f.t, f.data)
				n++
				if n%len(frames) == 0 {
					e.Flush(nil)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
			b.ReportMetric(float64(len(frames)), "frames/mix")
		})
	}
}

// BenchmarkPipeline compares the per-packet cost of Engine.Packet (direct) with a Pipeline (the flow
// table on a second goroutine, as `flowctl convert` runs the engine), without flushes: the mix repeats,
// so its flows stay in the table.
func BenchmarkPipeline(b *testing.B) {
	for _, flows := range []int{1000, 10000, 100000} {
		frames := benchMix(flows)
		for _, piped := range []bool{false, true} {
			name := fmt.Sprintf("direct_flows_%d", flows)
			if piped {
				name = fmt.Sprintf("pipeline_flows_%d", flows)
			}
			b.Run(name, func(b *testing.B) {
				e := NewEngine(Options{})
				feed := e.Packet
				if piped {
					pl := NewPipeline(e)
					defer pl.Close()
					feed = pl.Packet
				}
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					f := frames[n%len(frames)]
					feed(LinkEthernet, f.t, f.data)
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
			})
		}
	}
}

// BenchmarkDecodingLayerParser is the comparison point: the bare loop that only decodes the same frames
// with gopacket's DecodingLayerParser (Ethernet, IPv4, IPv6, TCP, UDP, DNS), building no flows.
func BenchmarkDecodingLayerParser(b *testing.B) {
	for _, flows := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("flows_%d", flows), func(b *testing.B) {
			frames := benchMix(flows)
			var (
				eth     layers.Ethernet
				ip4     layers.IPv4
				ip6     layers.IPv6
				tcp     layers.TCP
				udp     layers.UDP
				dns     layers.DNS
				decoded = make([]gopacket.LayerType, 0, 8)
			)
			parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &dns)
			parser.IgnoreUnsupported = true
			var bytes int64
			for _, f := range frames {
				bytes += int64(len(f.data))
			}
			b.SetBytes(bytes / int64(len(frames)))
			b.ReportAllocs()
			b.ResetTimer()
			n, errs := 0, 0
			for b.Loop() {
				if err := parser.DecodeLayers(frames[n%len(frames)].data, &decoded); err != nil {
					errs++
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
			if errs > 0 {
				b.Logf("%d decode errors", errs)
			}
		})
	}
}

// TestBenchMixIsRealistic keeps the benchmark honest: the mix yields the flows it claims, DNS answers
// name TCP flows, and the gopacket parser decodes every frame down to its transport layer.
func TestBenchMixIsRealistic(t *testing.T) {
	frames := benchMix(200)
	e := NewEngine(Options{})
	for _, f := range frames {
		e.Packet(LinkEthernet, f.t, f.data)
	}
	if st := e.Stats(); st.Handled != uint64(len(frames)) || st.DNS == 0 {
		t.Errorf("stats %+v for %d frames", st, len(frames))
	}
	s := e.Flush(nil)
	passive := 0
	for _, f := range s.Flows {
		if f.NameSource == SourcePassive {
			passive++
		}
	}
	// One flow per generated conversation (DNS lookups included: each is its own 4-tuple).
	if len(s.Flows) != 200 || passive == 0 {
		t.Errorf("%d flows, %d passive names", len(s.Flows), passive)
	}
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		dns     layers.DNS
		decoded []gopacket.LayerType
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &dns)
	parser.IgnoreUnsupported = true
	for i, f := range frames {
		if err := parser.DecodeLayers(f.data, &decoded); err != nil || len(decoded) < 3 {
			t.Fatalf("frame %d: %v %v", i, decoded, err)
		}
	}
}

// BenchmarkFinish measures the end of a conversion or a window: exporting, ordering, numbering and
// naming the flows of a large table (Detach, then Finish).
func BenchmarkFinish(b *testing.B) {
	for _, flows := range []int{10000, 180000} {
		frames := benchMix(flows)
		b.Run(fmt.Sprintf("flows_%d", flows), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				e := NewEngine(Options{})
				for _, f := range frames {
					e.Packet(LinkEthernet, f.t, f.data)
				}
				d := e.Detach()
				b.StartTimer()
				s := d.Finish(nil)
				if len(s.Flows) == 0 {
					b.Fatal("no flows")
				}
			}
		})
	}
}
