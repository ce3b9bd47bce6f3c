package convert

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

func udpFrame(src string) []byte {
	return ip4(17, src, "8.8.8.8", nil, udpDgram(50000, 53, make([]byte, 10)))
}

// A capture of tagged frames only gives no flows; the hint counts them and names --decode-vlan, which
// then converts them and leaves no hint.
func TestHintAllTagged(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tagged.pcap")
	writePcap(t, p, layers.LinkTypeEthernet, false, []rec{
		{at(10, 0), vlanFrame(5, 0x0800, udpFrame("192.168.1.2"))},
		{at(11, 0), vlanFrame(5, 0x0800, udpFrame("192.168.1.3"))},
		{at(12, 0), vlanFrame(5, 0x0800, udpFrame("192.168.1.4"))},
	})
	res, f := convertFile(t, p, Options{OutDir: dir})
	if len(f.Flows) != 0 || res.VLANFrames != 3 {
		t.Fatalf("flows %d, tagged %d; want 0 and 3", len(f.Flows), res.VLANFrames)
	}
	if len(res.Hints) != 1 || !strings.Contains(res.Hints[0], "3 of 3 frame(s) are 802.1Q") || !strings.Contains(res.Hints[0], "--decode-vlan") {
		t.Errorf("hints %q", res.Hints)
	}
	res, f = convertFile(t, p, Options{OutDir: dir, Flow: flow.Options{DecodeVLAN: true}})
	if len(f.Flows) != 3 || res.VLANFrames != 0 || len(res.Hints) != 0 {
		t.Errorf("--decode-vlan: flows %d, tagged %d, hints %q", len(f.Flows), res.VLANFrames, res.Hints)
	}
}

// cookedFrame builds a Linux cooked v1 frame with a link-layer address of addrLen bytes.
func cookedFrame(addrLen uint16, payload []byte) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[2:4], 1)
	binary.BigEndian.PutUint16(h[4:6], addrLen)
	binary.BigEndian.PutUint16(h[14:16], 0x0800)
	return append(h, payload...)
}

// Cooked frames from a device without a link-layer address (tun) fail R-DEC-10's test: the hint says so
// and counts them; the frame with an Ethernet address still makes its flow.
func TestHintTunCooked(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tun.pcap")
	writePcap(t, p, layers.LinkTypeLinuxSLL, false, []rec{
		{at(10, 0), cookedFrame(0, udpFrame("10.8.0.2"))},
		{at(11, 0), cookedFrame(0, udpFrame("10.8.0.3"))},
		{at(12, 0), cookedFrame(6, udpFrame("192.168.1.2"))},
	})
	res, f := convertFile(t, p, Options{OutDir: dir})
	if len(f.Flows) != 1 || res.CookedNoAddr != 2 {
		t.Fatalf("flows %d, address-less cooked frames %d; want 1 and 2", len(f.Flows), res.CookedNoAddr)
	}
	if len(res.Hints) != 1 || !strings.Contains(res.Hints[0], "2 Linux cooked frame(s)") || !strings.Contains(res.Hints[0], "tun") {
		t.Errorf("hints %q", res.Hints)
	}
}

// A pcapng merged from captures of different link types stops at the second interface (R-PCAP-2): the
// conversion says so loudly besides the warning.
func TestHintMergedPcapng(t *testing.T) {
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		l := uint32(12 + len(body))
		b := le.AppendUint32(le.AppendUint32(nil, typ), l)
		return le.AppendUint32(append(b, body...), l)
	}
	epb := func(iface uint32, sec uint32, data []byte) []byte {
		b := le.AppendUint32(nil, iface)
		b = le.AppendUint32(le.AppendUint32(b, 0), sec*1000000)
		b = le.AppendUint32(le.AppendUint32(b, uint32(len(data))), uint32(len(data)))
		return block(6, append(b, data...))
	}
	var file []byte
	file = append(file, block(0x0A0D0D0A, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, 0x1A2B3C4D), 1), ^uint64(0)))...)
	file = append(file, block(1, le.AppendUint32(le.AppendUint32(nil, 1), 0))...) // Ethernet
	file = append(file, epb(0, 10, ethFrame(0x0800, udpFrame("192.168.1.2")))...)
	file = append(file, block(1, le.AppendUint32(le.AppendUint32(nil, 113), 0))...) // Linux cooked
	file = append(file, epb(1, 11, cookedFrame(6, udpFrame("192.168.1.3")))...)
	dir := t.TempDir()
	p := filepath.Join(dir, "merged.pcapng")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		t.Fatal(err)
	}
	res, f := convertFile(t, p, Options{OutDir: dir})
	if len(f.Flows) != 1 || !res.Mixed || len(res.Warnings) != 1 {
		t.Fatalf("flows %d, mixed %v, warnings %q", len(f.Flows), res.Mixed, res.Warnings)
	}
	if len(res.Hints) != 1 || !strings.Contains(res.Hints[0], "ONLY PART OF THIS CAPTURE") || !strings.Contains(res.Hints[0], "mergecap") {
		t.Errorf("hints %q", res.Hints)
	}
}

// The result counts the flows the long-term name cache named (R-NAME-2 step 3), for captures (named
// chunk by chunk) and for flow logs.
func TestCacheNamedCount(t *testing.T) {
	dir := t.TempDir()
	cache := flow.NewNameCache("")
	cache.Set("8.8.8.8", "dns.google")
	p := filepath.Join(dir, "one.pcap")
	writePcap(t, p, layers.LinkTypeEthernet, false, []rec{
		{at(10, 0), ethFrame(0x0800, udpFrame("192.168.1.2"))},
		{at(11, 0), ethFrame(0x0800, ip4(17, "192.168.1.2", "9.9.9.9", nil, udpDgram(50001, 53, make([]byte, 10))))},
	})
	res, f := convertFile(t, p, Options{OutDir: dir, Cache: cache})
	if res.CacheNamed != 1 || len(f.Flows) != 2 {
		t.Errorf("capture: %d flows named from the cache of %d, want 1 of 2", res.CacheNamed, len(f.Flows))
	}
	res, _ = convertFile(t, p, Options{OutDir: dir})
	if res.CacheNamed != 0 {
		t.Errorf("no cache: %d flows named from it", res.CacheNamed)
	}
	nf := filepath.Join(dir, "flows.netflow")
	if err := os.WriteFile(nf, []byte("ts,te,td,sa,da,sp,dp,pr,ipkt,ibyt,opkt,obyt\n2022-06-02 17:21:39,2022-06-02 17:21:39,0.000,192.168.12.164,8.8.8.8,62239,53,UDP,1,60,0,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ = convertFile(t, nf, Options{OutDir: dir, Cache: cache})
	if res.CacheNamed != 1 {
		t.Errorf("netflow: %d flows named from the cache, want 1", res.CacheNamed)
	}
}

// Reader converts a stream exactly as File converts the same bytes, under the name it is given.
func TestReaderMatchesFile(t *testing.T) {
	in := filepath.Join("testdata", "golden", "dnscname.pcap")
	want, err := os.ReadFile(filepath.Join("testdata", "golden", "dnscname_filtered.bf"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	res, err := Reader(context.Background(), f, "dnscname.pcap", Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	// The hash is random per file (R-OUT-2): compare from trafficDate on.
	got := out.String()
	if res.Output != "" || res.Format != FormatPcap || !strings.HasPrefix(got, `{"hash": "`) || afterHash(got) != afterHash(string(want)) {
		t.Errorf("output %q format %s; the stream's .bf differs from the golden file:\n%s", res.Output, res.Format, got)
	}
	name, err := OutputName(in, FormatAuto)
	if err != nil || name != "dnscname_filtered.bf" {
		t.Errorf("OutputName: %q, %v", name, err)
	}
}

// afterHash returns a BayseFlow text from its trafficDate on (empty when it has none).
func afterHash(s string) string {
	i := strings.Index(s, `"trafficDate"`)
	if i < 0 {
		return ""
	}
	return s[i:]
}
