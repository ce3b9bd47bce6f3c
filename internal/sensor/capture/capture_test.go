package capture_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/sensor/capture"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

func TestCookedToEthernet(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sll := make([]byte, 16)
	binary.BigEndian.PutUint16(sll[0:], 4) // PACKET_OUTGOING: the engine's cooked path would drop it
	binary.BigEndian.PutUint16(sll[2:], 1)
	binary.BigEndian.PutUint16(sll[4:], 6)
	copy(sll[6:], []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff})
	binary.BigEndian.PutUint16(sll[14:], 0x0800)
	sll2 := make([]byte, 20)
	binary.BigEndian.PutUint16(sll2[0:], 0x0800)
	sll2[10] = 4
	sll2[11] = 6
	copy(sll2[12:], []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff})
	want := append([]byte{0, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x08, 0x00}, ip...)
	for _, c := range []struct {
		link flow.LinkType
		hdr  []byte
	}{{flow.LinkLinuxSLL, sll}, {flow.LinkLinuxSLL2, sll2}} {
		got := capture.CookedToEthernet(c.link, append(append([]byte(nil), c.hdr...), ip...))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got % x\nwant % x", c.link, got, want)
		}
		if capture.CookedToEthernet(c.link, c.hdr[:len(c.hdr)-1]) != nil {
			t.Errorf("%s: short frame not refused", c.link)
		}
	}
	// What the rewrite buys: the engine's cooked-capture path (R-DEC-10, kept from the reference) drops
	// IPv6, frames whose link-layer address is not 6 bytes (tun, some outgoing packets) and never reads
	// DNS answers from cooked frames; in Ethernet layout all of them count.
	udp4 := []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x36, 0, 20, 0, 0}
	udp4 = append(udp4, []byte("twelve bytes")...)
	udp6 := []byte{0x60, 0, 0, 0, 0, 20, 17, 64}
	udp6 = append(udp6, bytes.Repeat([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 2)...)
	udp6[len(udp6)-1] = 2
	udp6 = append(udp6, 0x30, 0x39, 0x00, 0x36, 0, 20, 0, 0)
	udp6 = append(udp6, []byte("twelve bytes")...)
	noAddr := append([]byte(nil), sll...)
	binary.BigEndian.PutUint16(noAddr[4:], 0)
	v6hdr := append([]byte(nil), sll...)
	binary.BigEndian.PutUint16(v6hdr[14:], 0x86dd)
	count := func(link flow.LinkType, data []byte) int {
		e := flow.NewEngine(flow.Options{})
		e.Packet(link, 1, data)
		return len(e.Flush(nil).Flows)
	}
	for name, raw := range map[string][]byte{
		"IPv6":               append(v6hdr, udp6...),
		"no link address":    append(noAddr, udp4...),
		"IPv4 (for control)": append(append([]byte(nil), sll...), udp4...),
	} {
		if n := count(flow.LinkEthernet, capture.CookedToEthernet(flow.LinkLinuxSLL, raw)); n != 1 {
			t.Errorf("%s: rewritten frame gave %d flows, want 1", name, n)
		}
		t.Logf("%s: raw cooked frame gives %d flow(s), rewritten 1", name, count(flow.LinkLinuxSLL, raw))
	}
}

func TestExpand(t *testing.T) {
	got, err := capture.Expand([]string{"eth0", "eth1", "eth0"}, []string{"eth1"}, capture.MethodPcap)
	if err != nil || !slices.Equal(got, []string{"eth0"}) {
		t.Errorf("got %v %v", got, err)
	}
	got, _ = capture.Expand([]string{"eth0", "any"}, nil, capture.MethodPcap)
	if !slices.Equal(got, []string{"any"}) {
		t.Errorf("any: %v", got)
	}
	got, _ = capture.Expand([]string{"any"}, []string{"lo"}, capture.MethodAFPacket)
	if !slices.Equal(got, []string{"any"}) {
		t.Errorf("afpacket any with exclusions: %v", got)
	}
	got, err = capture.Expand([]string{"any"}, []string{"lo"}, capture.MethodPcap)
	if err == nil && (slices.Contains(got, "lo") || slices.Contains(got, "any")) {
		t.Errorf("pcap any minus lo: %v", got)
	}
	if _, err := capture.Expand([]string{"eth0"}, []string{"eth0"}, capture.MethodPcap); err == nil {
		t.Error("everything excluded: no error")
	}
}

func TestQueueDropsWhenFull(t *testing.T) {
	q := capture.NewQueue(2, 100)
	p := capture.NewPacket(flow.LinkEthernet, time.Unix(5, 123456789), make([]byte, 40))
	if p.Sec != 5 || p.Usec != 123456 {
		t.Errorf("time %d.%06d", p.Sec, p.Usec)
	}
	if !q.Offer(p) || !q.Offer(p) {
		t.Fatal("offer refused")
	}
	if q.Offer(p) {
		t.Error("third packet accepted by a 2-packet queue")
	}
	got := <-q.C()
	q.Done(got)
	big := capture.NewPacket(flow.LinkEthernet, time.Unix(5, 0), make([]byte, 70))
	if q.Offer(big) {
		t.Error("packet over the byte bound accepted")
	}
	if q.Dropped() != 2 || q.Accepted() != 2 || q.Len() != 1 {
		t.Errorf("dropped %d accepted %d len %d", q.Dropped(), q.Accepted(), q.Len())
	}
}

func TestParseMethod(t *testing.T) {
	for in, want := range map[string]capture.Method{"": capture.MethodPcap, "PCAP": capture.MethodPcap, "afpacket": capture.MethodAFPacket} {
		if got, err := capture.ParseMethod(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := capture.ParseMethod("netmap"); err == nil {
		t.Error("netmap accepted")
	}
}
