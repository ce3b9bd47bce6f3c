package pcapfile

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// TestAllInterfaces: libpcap stops at an interface of another link type or snapshot length
// (ErrMixed); Options.AllInterfaces reads on, each frame with its own interface's link type, checked
// against its own interface's snapshot length.
func TestAllInterfaces(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{LinkType: layers.LinkTypeEthernet, SnapLength: 65535},
		pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeRaw, SnapLength: 100})
	if err != nil {
		t.Fatal(err)
	}
	put := func(iface, n int) {
		t.Helper()
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1_700_000_000, 0), CaptureLength: n, Length: n, InterfaceIndex: iface}
		if err := w.WritePacket(ci, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 60)
	put(raw, 80)
	put(0, 150) // more than the raw interface's 100, within the Ethernet one's
	put(raw, 150)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func(all bool) ([]flow.LinkType, bool, error) {
		rd, err := newReader(&bytesSource{window{cur: buf.Bytes()}}, Options{AllInterfaces: all})
		if err != nil {
			t.Fatal(err)
		}
		var links []flow.LinkType
		for {
			f, err := rd.Next()
			if err != nil {
				return links, rd.ReadPastMixed(), err
			}
			links = append(links, f.Link)
		}
	}
	if links, past, err := read(false); len(links) != 0 || !errors.Is(err, ErrMixed) || past {
		t.Errorf("as libpcap: frames %v, err %v, past %v; want none, ErrMixed at the second interface", links, err, past)
	}
	links, past, err := read(true)
	want := []flow.LinkType{flow.LinkEthernet, flow.LinkRaw, flow.LinkEthernet}
	if len(links) != len(want) || links[0] != want[0] || links[1] != want[1] || links[2] != want[2] || !past {
		t.Errorf("all interfaces: links %v (past %v), want %v", links, past, want)
	}
	// The last frame is longer than its own interface's snapshot length: a read error, as libpcap's.
	if !errors.Is(err, ErrDamaged) || errors.Is(err, io.EOF) {
		t.Errorf("all interfaces: ended with %v, want ErrDamaged (150 bytes on a 100-byte interface)", err)
	}
}
