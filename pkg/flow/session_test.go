package flow

import (
	"encoding/binary"
	"strings"
	"testing"
)

// clientHello builds a TLS 1.2-style ClientHello record carrying the given server names (host_name
// entries) after a few other extensions.
func clientHello(names ...string) []byte {
	var sni []byte
	for _, n := range names {
		sni = append(sni, 0)
		sni = binary.BigEndian.AppendUint16(sni, uint16(len(n)))
		sni = append(sni, n...)
	}
	sniExt := binary.BigEndian.AppendUint16(nil, uint16(len(sni)))
	sniExt = append(sniExt, sni...)

	var exts []byte
	exts = binary.BigEndian.AppendUint16(exts, 0x000b) // ec_point_formats
	exts = binary.BigEndian.AppendUint16(exts, 2)
	exts = append(exts, 1, 0)
	exts = binary.BigEndian.AppendUint16(exts, 0) // server_name
	exts = binary.BigEndian.AppendUint16(exts, uint16(len(sniExt)))
	exts = append(exts, sniExt...)
	exts = binary.BigEndian.AppendUint16(exts, 0x0017) // extended_master_secret
	exts = binary.BigEndian.AppendUint16(exts, 0)

	var body []byte
	body = append(body, 3, 3)                     // client_version
	body = append(body, make([]byte, 32)...)      // random
	body = append(body, 32)                       // session_id
	body = append(body, make([]byte, 32)...)      //
	body = binary.BigEndian.AppendUint16(body, 4) // cipher suites
	body = append(body, 0x13, 0x01, 0xc0, 0x2f)
	body = append(body, 1, 0) // compression: null
	body = binary.BigEndian.AppendUint16(body, uint16(len(exts)))
	body = append(body, exts...)

	hs := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	hs = append(hs, body...)
	rec := []byte{0x16, 3, 1}
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(hs)))
	return append(rec, hs...)
}

// SessionName: TLS SNI, HTTP Host (port dropped), and garbage.
func TestSessionName(t *testing.T) {
	ch := clientHello("WWW.Example.COM")
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"sni", ch, "www.example.com"},
		{"sni trailing dot", clientHello("example.org."), "example.org"},
		{"sni cut short", ch[:len(ch)-20], ""},
		{"sni bad name", clientHello("bad name.example"), ""},
		{"sni empty list", clientHello(), ""},
		{"http", []byte("GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: Example.com\r\n\r\n"), "example.com"},
		{"http with port", []byte("POST /api HTTP/1.1\r\nhost: api.example.com:8080\r\n\r\n"), "api.example.com"},
		{"http LF only", []byte("HEAD / HTTP/1.0\nHOST:  h.example \n\n"), "h.example"},
		{"http ipv6 literal", []byte("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n"), ""},
		{"http ipv4 literal", []byte("GET / HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n"), "192.0.2.1"},
		{"http host after headers end", []byte("GET / HTTP/1.1\r\nA: b\r\n\r\nHost: late.example\r\n"), ""},
		{"http no host", []byte("GET / HTTP/1.1\r\nA: b\r\n\r\n"), ""},
		{"http bad chars", []byte("GET / HTTP/1.1\r\nHost: <script>\r\n\r\n"), ""},
		{"not a method", []byte("HELLO / HTTP/1.1\r\nHost: x.example\r\n\r\n"), ""},
		{"empty label (fuzz crasher)", []byte("POST \nhost:.0"), ""},
		{"empty inner label", []byte("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n"), ""},
		{"two trailing dots", []byte("GET / HTTP/1.1\r\nHost: a..\r\n\r\n"), ""},
		{"label of 63", []byte("GET / HTTP/1.1\r\nHost: " + strings.Repeat("a", 63) + ".example\r\n\r\n"), strings.Repeat("a", 63) + ".example"},
		{"label of 64", []byte("GET / HTTP/1.1\r\nHost: " + strings.Repeat("a", 64) + ".example\r\n\r\n"), ""},
		{"254 characters", []byte("GET / HTTP/1.1\r\nHost: " + strings.Repeat("abcdefghi.", 25) + "abcd\r\n\r\n"), ""},
		{"garbage", []byte{0x16, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff}, ""},
		{"garbage 2", []byte{0x16}, ""},
		{"empty", nil, ""},
		{"ssh banner", []byte("SSH-2.0-OpenSSH_9.0\r\n"), ""},
	}
	for _, c := range cases {
		if got := SessionName(c.payload); got != c.want {
			t.Errorf("%s: SessionName = %q, want %q", c.name, got, c.want)
		}
	}
}

// Options.SessionNames: the server of a ClientHello is named with source "session" (R-NAME-2 step 1);
// without the option nothing is inspected (R-PCAP-6).
func TestEngineSessionNames(t *testing.T) {
	syn := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSegHL(50000, 443, 20, 0x02, nil)))
	hello := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, clientHello("www.example.com"))))
	f := only(t, run(Options{SessionNames: true}, ethAt(1, syn), ethAt(2, hello)))
	if f.Name != "www.example.com" || f.NameSource != SourceSession {
		t.Errorf("session: %q/%s", f.Name, f.NameSource)
	}
	f = only(t, run(Options{}, ethAt(1, syn), ethAt(2, hello)))
	if f.NameSource != SourceOriginal || f.Name != "93.184.216.34" {
		t.Errorf("without the option: %q/%s", f.Name, f.NameSource)
	}
	// A request sent by the flow's destination names its source, which is not the destination: unused.
	req := ether4(ipv4(6, "93.184.216.34", "192.168.1.2", tcpSeg(443, 50000, []byte("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n"))))
	f = only(t, run(Options{SessionNames: true}, ethAt(1, syn), ethAt(2, req)))
	if f.NameSource == SourceSession {
		t.Errorf("named by a request from the server: %q", f.Name)
	}
}
