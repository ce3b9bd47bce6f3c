package ctl

import (
	"bytes"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// udpPacket serializes src → dst:53 UDP over IPv4, under an Ethernet header when eth is set (raw IP
// otherwise).
func udpPacket(t *testing.T, eth bool, src, dst string, sport uint16) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 53}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls := []gopacket.SerializableLayer{ip, udp, gopacket.Payload([]byte("flowfleet merged pcapng test"))}
	if eth {
		ls = append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
			DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}}, ls...)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mergedPcapng is what mergecap makes of an Ethernet capture (snaplen 65535) and a raw IP one (snaplen
// 1500): two interfaces of different link types and snapshot lengths, packets interleaved in time.
func mergedPcapng(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&out, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 65535},
		pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	tun, err := w.AddInterface(pcapgo.NgInterface{Name: "tun0", LinkType: layers.LinkTypeRaw, SnapLength: 1500})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_700_000_000, 0)
	write := func(iface int, sec int, data []byte) {
		t.Helper()
		ci := gopacket.CaptureInfo{Timestamp: at.Add(time.Duration(sec) * time.Second), CaptureLength: len(data), Length: len(data),
			InterfaceIndex: iface}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 0, udpPacket(t, true, "192.168.1.2", "9.9.9.9", 40000))
	write(tun, 1, udpPacket(t, false, "10.8.0.2", "1.1.1.1", 41000))
	write(0, 2, udpPacket(t, true, "192.168.1.2", "8.8.8.8", 40001))
	write(tun, 3, udpPacket(t, false, "10.8.0.2", "1.0.0.1", 41001))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestConvertAllInterfaces: a merged pcapng (mergecap writes every interface description first) is read
// up to its second interface, so to no packet at all, as the reference reads it, with the loud hint that names --all-interfaces; with the flag every
// interface's packets give flows, and a warning says the output departs from the reference.
func TestConvertAllInterfaces(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "merged.pcapng"), mergedPcapng(t))
	dsts := func(path string) []string {
		var out []string
		for _, f := range readBF(t, path).Flows {
			out = append(out, f.Dst)
		}
		sort.Strings(out)
		return out
	}

	_, stderr, err := runCtlIn(t, nil, "convert", "--name-cache", "", "-o", dir, in)
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, stderr)
	}
	out := filepath.Join(dir, "merged_filtered.bf")
	if got := dsts(out); len(got) != 0 {
		t.Errorf("without --all-interfaces: destinations %v, want none (reading stops at the second interface)", got)
	}
	if !strings.Contains(stderr, "ONLY PART OF THIS CAPTURE WAS CONVERTED") || !strings.Contains(stderr, "--all-interfaces") {
		t.Errorf("no hint naming --all-interfaces:\n%s", stderr)
	}

	_, stderr, err = runCtlIn(t, nil, "convert", "--name-cache", "", "--all-interfaces", "-o", dir, in)
	if err != nil {
		t.Fatalf("convert --all-interfaces: %v\n%s", err, stderr)
	}
	if got, want := strings.Join(dsts(out), ","), "1.0.0.1:53,1.1.1.1:53,8.8.8.8:53,9.9.9.9:53"; got != want {
		t.Errorf("with --all-interfaces: destinations %s, want %s", got, want)
	}
	if strings.Contains(stderr, "ONLY PART") || !strings.Contains(stderr, "where the reference stops") {
		t.Errorf("with --all-interfaces, want the departure warning and no hint:\n%s", stderr)
	}
}
