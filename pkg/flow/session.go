package flow

import (
	"bytes"
	"strings"
)

// This file finds the name a client asked a server for, in the first payload of a TCP flow: the
// server_name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3) or the Host header of an HTTP/1.x
// request. Names found here have source "session" (R-NAME-2 step 1); the reference has no such
// inspection, so the engine does it only with Options.SessionNames.

// maxHTTPHeader bounds how much of a request is searched for its Host header.
const maxHTTPHeader = 8192

// SessionName returns the host name in a TLS ClientHello or HTTP request at the start of payload, or "".
// It never reads past payload and accepts only names made of letters, digits, '-', '_' and '.'.
func SessionName(payload []byte) string {
	if len(payload) == 0 {
		return ""
	}
	if payload[0] == 0x16 {
		return clientHelloSNI(payload)
	}
	return httpHost(payload)
}

// clientHelloSNI parses a TLS record holding a ClientHello and returns its server_name.
func clientHelloSNI(b []byte) string {
	// Record header: type(1)=22, version(2), length(2).
	if len(b) < 5 || b[0] != 0x16 || b[1] != 3 {
		return ""
	}
	b = b[5:]
	// Handshake header: type(1)=1 ClientHello, length(3).
	if len(b) < 4 || b[0] != 1 {
		return ""
	}
	hl := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	b = b[4:]
	if hl < len(b) {
		b = b[:hl]
	}
	// client_version(2) random(32)
	if len(b) < 34 {
		return ""
	}
	b = b[34:]
	var ok bool
	if b, ok = skipVec(b, 1); !ok { // session_id
		return ""
	}
	if b, ok = skipVec(b, 2); !ok { // cipher_suites
		return ""
	}
	if b, ok = skipVec(b, 1); !ok { // compression_methods
		return ""
	}
	if len(b) < 2 {
		return ""
	}
	el := int(b[0])<<8 | int(b[1])
	b = b[2:]
	if el < len(b) {
		b = b[:el]
	}
	for len(b) >= 4 {
		typ := int(b[0])<<8 | int(b[1])
		l := int(b[2])<<8 | int(b[3])
		b = b[4:]
		if l > len(b) {
			return ""
		}
		ext := b[:l]
		b = b[l:]
		if typ != 0 { // server_name
			continue
		}
		if len(ext) < 2 {
			return ""
		}
		ext = ext[2:]
		for len(ext) >= 3 {
			nt := ext[0]
			nl := int(ext[1])<<8 | int(ext[2])
			ext = ext[3:]
			if nl > len(ext) {
				return ""
			}
			if nt == 0 {
				return hostName(ext[:nl])
			}
			ext = ext[nl:]
		}
		return ""
	}
	return ""
}

// skipVec skips a vector with an n-byte length prefix.
func skipVec(b []byte, n int) ([]byte, bool) {
	if len(b) < n {
		return nil, false
	}
	l := 0
	for i := 0; i < n; i++ {
		l = l<<8 | int(b[i])
	}
	if len(b) < n+l {
		return nil, false
	}
	return b[n+l:], true
}

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("HEAD "), []byte("PUT "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "),
}

// httpHost returns the Host header of an HTTP/1.x request.
func httpHost(b []byte) string {
	method := false
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, m) {
			method = true
			break
		}
	}
	if !method {
		return ""
	}
	if len(b) > maxHTTPHeader {
		b = b[:maxHTTPHeader]
	}
	// Skip the request line.
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return ""
	}
	b = b[i+1:]
	for len(b) > 0 {
		j := bytes.IndexByte(b, '\n')
		line := b
		if j >= 0 {
			line, b = b[:j], b[j+1:]
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return "" // end of headers
		}
		if len(line) > 5 && bytes.EqualFold(line[:5], []byte("host:")) {
			v := bytes.TrimSpace(line[5:])
			if len(v) > 0 && v[0] == '[' { // IPv6 literal: not a name
				return ""
			}
			if k := bytes.LastIndexByte(v, ':'); k >= 0 {
				v = v[:k]
			}
			return hostName(v)
		}
	}
	return ""
}

// hostName validates a host name taken from untrusted payload and returns it in lower case, or "".
func hostName(b []byte) string {
	b = bytes.TrimSuffix(b, []byte("."))
	if len(b) == 0 || len(b) > 253 {
		return ""
	}
	label := 0 // length of the current label
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			label++
		case c == '.':
			// fix: empty labels (".0", "a..b") were accepted, giving names like ".0" from garbage
			if label == 0 {
				return ""
			}
			label = 0
			continue
		default:
			return ""
		}
		if label > 63 { // fix: labels longer than DNS allows were accepted
			return ""
		}
	}
	if label == 0 { // an empty last label ("a..", after the one trailing dot is cut)
		return ""
	}
	return strings.ToLower(string(b))
}
