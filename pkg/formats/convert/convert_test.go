package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

func convertFile(t *testing.T, path string, opts Options) (*Result, *bayseflow.File) {
	t.Helper()
	if opts.OutDir == "" {
		opts.OutDir = t.TempDir()
	}
	res, err := File(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("convert %s: %v", path, err)
	}
	raw, err := os.ReadFile(res.Output)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasSuffix(raw, []byte("\n")) {
		t.Error("the .bf ends with a newline (R-OUT-1)")
	}
	f, err := bayseflow.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return res, f
}

// R-PCAP-3: an unknown link type is refused with an error naming it, for pcap and pcapng.
func TestUnknownLinkTypeRefused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "arcnet.pcap")
	writePcap(t, p, layers.LinkType(7), false, []rec{{at(1, 0), make([]byte, 60)}})
	_, err := File(context.Background(), p, Options{OutDir: dir})
	if err == nil || !strings.Contains(err.Error(), "LINKTYPE 7") {
		t.Errorf("pcap link type 7: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "arcnet_filtered.bf")); statErr == nil {
		t.Error("a .bf was written for a refused capture")
	}

	// pcapng: the interface's link type is checked when its first frame arrives.
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		l := uint32(12 + len(body))
		b := le.AppendUint32(le.AppendUint32(nil, typ), l)
		return le.AppendUint32(append(b, body...), l)
	}
	shb := block(0x0A0D0D0A, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, 0x1A2B3C4D), 1), ^uint64(0)))
	idb := block(1, le.AppendUint32(le.AppendUint32(nil, 147), 0))
	epb := block(6, append(le.AppendUint32(le.AppendUint32(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), 0), 1), 60), 60), make([]byte, 60)...))
	ng := filepath.Join(dir, "user0.pcapng")
	if err := os.WriteFile(ng, append(append(shb, idb...), epb...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = File(context.Background(), ng, Options{OutDir: dir})
	if err == nil || !strings.Contains(err.Error(), "LINKTYPE 147") {
		t.Errorf("pcapng link type 147: %v", err)
	}
}

// R-PCAP-2: a cut final record ends the reading; the flows of the complete records are written, with a
// warning.
func TestTruncatedLastRecord(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cut.pcap")
	writePcap(t, p, layers.LinkTypeEthernet, false, []rec{
		{at(100, 0), ethFrame(0x0800, ip4(17, "192.168.1.2", "8.8.8.8", nil, udpDgram(50000, 53, make([]byte, 10))))},
		{at(101, 0), ethFrame(0x0800, ip4(6, "192.168.1.2", "93.184.216.34", nil, tcpSeg(50001, 443, 0x18, make([]byte, 30))))},
	})
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, data[:len(data)-7], 0o644); err != nil {
		t.Fatal(err)
	}
	res, f := convertFile(t, p, Options{OutDir: dir})
	if len(f.Flows) != 1 || f.Flows[0].ProtocolInformation != "UDP" || f.TrafficDate != "100.0" {
		t.Errorf("flows %+v date %s", f.Flows, f.TrafficDate)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "stopped reading") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if res.Output != filepath.Join(dir, "cut_filtered.bf") || f.FileName != "cut_filtered.bf" {
		t.Errorf("output %s / %s (R-OUT-4)", res.Output, f.FileName)
	}
}

// R-DEC-11: a TCP frame too short for its data offset is skipped with a warning (the reference aborts).
func TestTruncatedTCPFrameWarning(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "short.pcap")
	full := ethFrame(0x0800, ip4(6, "192.168.1.2", "93.184.216.34", nil, tcpSeg(50001, 443, 0x18, nil)))
	writePcap(t, p, layers.LinkTypeEthernet, false, []rec{{at(5, 0), full[:14+20+10]}})
	res, f := convertFile(t, p, Options{OutDir: dir})
	if len(f.Flows) != 0 || f.TrafficDate != "5.0" {
		t.Errorf("flows %+v date %s", f.Flows, f.TrafficDate)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "R-DEC-11") {
		t.Errorf("warnings %q", res.Warnings)
	}
}

// R-ERR-2: a header-only capture and an ARP-only capture give an empty array and the default date.
func TestEmptyCaptures(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pcap")
	writePcap(t, empty, layers.LinkTypeEthernet, false, nil)
	arp := filepath.Join(dir, "arp.pcap")
	writePcap(t, arp, layers.LinkTypeEthernet, false, []rec{{at(1, 0), ethFrame(0x0806, make([]byte, 46))}})
	for _, p := range []string{empty, arp} {
		res, f := convertFile(t, p, Options{OutDir: dir})
		raw, _ := os.ReadFile(res.Output)
		if len(f.Flows) != 0 || f.TrafficDate != "99999999999.0" || !bytes.HasSuffix(raw, []byte(`"BayseFlows": []}`)) {
			t.Errorf("%s: %s", p, raw)
		}
	}
}

// R-PCAP-1, R-ERR-1: a file that is not a capture nor a known log is refused.
func TestRefusedInput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image.png")
	if err := os.WriteFile(p, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := File(context.Background(), p, Options{OutDir: dir}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("png: %v", err)
	}
	if _, err := File(context.Background(), filepath.Join(dir, "missing.pcap"), Options{OutDir: dir}); err == nil {
		t.Error("missing input accepted")
	}
}

// R-OUT-8 through a Zeek conversion: orig_bytes 40 with orig_pkts 0 gives srcPkts 1; R-OUT-4: ".conn"
// stays in the name.
func TestROUT8Zeek(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.conn.log")
	line := strings.Join([]string{"100.0", "Cz", "192.168.1.2", "50000", "93.184.216.34", "443", "tcp", "-", "1.0",
		"40", "0", "SF", "-", "-", "0", "ShAd", "0", "80", "2", "80", "-"}, "\t")
	if err := os.WriteFile(p, []byte("#fields\tts\n"+line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, f := convertFile(t, p, Options{OutDir: dir})
	if len(f.Flows) != 1 {
		t.Fatalf("flows %+v", f.Flows)
	}
	r := f.Flows[0]
	if r.SrcPkts.String() != "1" || r.SrcBytes.String() != "40" || r.DstPkts.String() != "2" || r.Identifier != "Cz" || r.Duration.String() != "1.0" {
		t.Errorf("row %+v", r)
	}
	if filepath.Base(res.Output) != "x.conn.bf" || f.FileName != "x.conn.bf" || f.TrafficDate != "100.0" {
		t.Errorf("names %s %s date %s", res.Output, f.FileName, f.TrafficDate)
	}
}

// Format detection from content (--format auto).
func TestDetect(t *testing.T) {
	for _, c := range []struct {
		head string
		want Format // "" for refused
	}{
		{"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", FormatPcap},
		{"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", FormatPcap},
		{"", FormatZeek},
		{"\n\n", FormatZeek},
		{"#separator \\x09\n#fields\tts\tuid\n", FormatZeek},
		{"1617652286.1\tCx\t10.0.0.1\t5\t10.0.0.2\t53\tudp\n", FormatZeek},
		{`{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1"}` + "\n", FormatZeek},
		{`[{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1"}]`, FormatZeek},
		{`{"srcip":"10.0.0.1","_id":"x","timestamp":1}` + "\n", FormatInterflow},
		{`{"srcip":"10.0.0.1","uid":"u-1","timestamp":1}` + "\n", FormatInterflow}, // an Interflow record with a uid
		{`{"_id":"x","dstip":"10.0.0.2"}` + "\n", FormatInterflow},
		{"[]\n", FormatZeek},
		{" [ ] \n\n[]\n", FormatZeek},
		{`{"foo":1}` + "\n", FormatZeek}, // R-ZEEK-1: any JSON is read as a Zeek log (no records)
		{"Date first seen,Duration,Proto,Src IP Addr,Dst IP Addr,Packets\n", FormatNetflow},
		{"hello world\n", FormatZeek}, // R-ZEEK-1: "ASCII text" is a TSV Zeek log (R-ZEEK-2: no records)
		{"hello world", ""},           // "ASCII text, with no line terminators"
		{"caf\xc3\xa9\tx\n", ""},      // UTF-8 text
		{"\x00\x01\x02\x03binary", ""},
	} {
		got, err := Detect([]byte(c.head))
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("Detect(%q) = %q, %v; want %q", c.head, got, err, c.want)
		}
	}
}
