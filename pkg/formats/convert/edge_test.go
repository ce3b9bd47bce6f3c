package convert

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/formats/pcapfile"
)

// R-ERR-6: "Address text that is not a valid IPv4/IPv6 address … aborts the conversion where locality is
// tested (… Interflow: flow destinations at naming time …)" (R-IF-7, R-NAME-1: ACTIVE tests every flow
// destination). docs/conversion.md keeps the abort ("stops with an error naming the file and line").
func TestRERR6InterflowBadDestination(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bad.if")
	rec := `{"srcip": "10.0.0.1", "srcport": 50000, "dstip": "not-an-ip", "dstport": 443, "proto_name": "tcp", ` +
		`"timestamp": 1656517273742, "duration": 128, "_id": "x", "outbytes_total": 100, "inbytes_total": 200, ` +
		`"outpkts_delta": 1, "inpkts_delta": 2}`
	if err := os.WriteFile(in, []byte(rec+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := File(context.Background(), in, Options{OutDir: t.TempDir(), Format: FormatInterflow})
	if err == nil {
		t.Errorf("converted to %s, want an error (destination %q is not an IP address)", res.Output, "not-an-ip")
	}
}

// R-ZEEK-1/R-ZEEK-3/R-OUT-9: a JSON conn.log is accepted ("JSON/NDJSON content → JSON"); a line holding an
// array replaces the records by its elements, so "[]" gives an empty .bf (libmagic: "JSON text data").
// Converted the way the conformance harness does it (format detected from content).
func TestZeekEmptyJSONArrayAutoDetect(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "empty_JSON.conn.log")
	if err := os.WriteFile(in, []byte("[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := File(context.Background(), in, Options{OutDir: t.TempDir()})
	if err != nil {
		t.Fatalf("convert: %v, want an empty empty_JSON.conn.bf", err)
	}
	if res.Flows != 0 {
		t.Errorf("%d flows", res.Flows)
	}
}

// R-PCAP-2 (capture audit): "A damaged or cut final record ends the reading silently". A pcapng whose
// final Enhanced Packet Block names an interface that has no IDB is damaged (libpcap: "a packet arrived on
// interface 5, but there's no Interface Description Block for that interface"): the frames before it are
// converted and the .bf is written.
func TestCapturePcapngDamagedFinalBlock(t *testing.T) {
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		l := uint32(12 + len(body))
		b := le.AppendUint32(le.AppendUint32(nil, typ), l)
		return le.AppendUint32(append(b, body...), l)
	}
	epb := func(iface uint32, usec uint64, data []byte) []byte {
		b := le.AppendUint32(nil, iface)
		b = le.AppendUint32(b, uint32(usec>>32))
		b = le.AppendUint32(b, uint32(usec))
		b = le.AppendUint32(b, uint32(len(data)))
		b = le.AppendUint32(b, uint32(len(data)))
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return block(6, b)
	}
	shb := block(0x0A0D0D0A, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, 0x1A2B3C4D), 1), ^uint64(0)))
	idb := block(1, le.AppendUint32(le.AppendUint32(nil, 1), 0)) // Ethernet, snaplen 0
	good := ethFrame(0x0800, ip4(17, "192.168.1.2", "8.8.8.8", nil, udpDgram(50000, 53, make([]byte, 10))))
	file := append(append(append(shb, idb...), epb(0, 100_000_000, good)...), epb(5, 101_000_000, good)...)
	dir := t.TempDir()
	p := filepath.Join(dir, "damaged.pcapng")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := File(context.Background(), p, Options{OutDir: dir})
	if err != nil {
		t.Fatalf("convert: %v; want the flow of the first frame and a .bf", err)
	}
	if res.Flows != 1 {
		t.Errorf("%d flows", res.Flows)
	}
}

// R-PCAP-1, R-ERR-1: a pcapng file that libpcap refuses to open (here: a section header and no interface
// description) stops the reference with an error and no output; so does flowctl convert.
func TestPcapngWithoutInterfaceRefused(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "empty.pcapng")
	shb := binary.LittleEndian.AppendUint32(nil, 0x0A0D0D0A)
	shb = binary.LittleEndian.AppendUint32(shb, 28)
	shb = binary.LittleEndian.AppendUint32(shb, 0x1A2B3C4D)
	shb = binary.LittleEndian.AppendUint16(shb, 1)
	shb = binary.LittleEndian.AppendUint16(shb, 0)
	shb = binary.LittleEndian.AppendUint64(shb, ^uint64(0))
	shb = binary.LittleEndian.AppendUint32(shb, 28)
	if err := os.WriteFile(in, shb, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err := File(context.Background(), in, Options{OutDir: out})
	if !errors.Is(err, pcapfile.ErrUnreadable) {
		t.Fatalf("convert: %v, want ErrUnreadable", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("%d files written, want none", len(entries))
	}
}
