package flow

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// Tests of section 4 (R-DNS-1 … R-DNS-7): the reference's own DNS walker.

// msg builds a DNS message by hand; offsets are relative to the message start (what compression
// pointers use).
type msg struct{ b []byte }

// newMsg starts a message with the given flags and section counts.
func newMsg(flags uint16, qd, an, ns, ar int) *msg {
	m := &msg{b: make([]byte, 12)}
	binary.BigEndian.PutUint16(m.b[0:2], 0xbeef)
	binary.BigEndian.PutUint16(m.b[2:4], flags)
	binary.BigEndian.PutUint16(m.b[4:6], uint16(qd))
	binary.BigEndian.PutUint16(m.b[6:8], uint16(an))
	binary.BigEndian.PutUint16(m.b[8:10], uint16(ns))
	binary.BigEndian.PutUint16(m.b[10:12], uint16(ar))
	return m
}

const responseFlags = 0x8180 // QR=1, opcode 0, RD, RA, NOERROR

// labels returns the wire form of a dotted name (no compression), with the final zero byte.
func labels(name string) []byte {
	var b []byte
	for _, l := range strings.Split(name, ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// raw appends raw bytes and returns their offset.
func (m *msg) raw(b []byte) int {
	off := len(m.b)
	m.b = append(m.b, b...)
	return off
}

func (m *msg) u16(v uint16) { m.b = binary.BigEndian.AppendUint16(m.b, v) }

// question appends a question whose name is given in wire form.
func (m *msg) question(wire []byte, qtype uint16) int {
	off := m.raw(wire)
	m.u16(qtype)
	m.u16(1)
	return off
}

// rr appends a record whose owner is a compression pointer to ownerOff; it returns the offset of its
// RDATA.
func (m *msg) rr(ownerOff int, typ uint16, rdata []byte) int {
	m.u16(0xC000 | uint16(ownerOff))
	m.u16(typ)
	m.u16(1)
	m.b = binary.BigEndian.AppendUint32(m.b, 300)
	m.u16(uint16(len(rdata)))
	return m.raw(rdata)
}

// dnsFrame wraps a message in Ethernet/IPv4/UDP from the resolver's port 53.
func dnsFrame(server, client string, m []byte) []byte {
	return ether4(ipv4(17, server, client, udpDgram(53, 50000, m)))
}

// walkMsg walks one message the way the engine does and returns the table.
func walkMsg(t *testing.T, at float64, msgs ...[]byte) *AnswerTable {
	t.Helper()
	table := NewAnswerTable()
	var w dnsWalker
	for _, m := range msgs {
		f := dnsFrame("192.168.1.1", "192.168.1.2", m)
		w.walk(table, f, 42, at)
	}
	return table
}

// dump lists the table as "name=answer,answer" items in table order.
func dump(table *AnswerTable) []string {
	var out []string
	idx := map[string]int{}
	for _, n := range table.names {
		idx[n] = len(out)
		out = append(out, n+"=")
	}
	table.Each(func(n string, a Answer) {
		i := idx[n]
		if !strings.HasSuffix(out[i], "=") {
			out[i] += ","
		}
		out[i] += a.Answer
	})
	return out
}

func wantTable(t *testing.T, table *AnswerTable, want ...string) {
	t.Helper()
	got := dump(table)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("table\n got  %q\n want %q", got, want)
	}
}

// R-DNS-2, R-DNS-3, R-DNS-5: a plain A answer through pointer 0xC00C is filed under its owner.
func TestRDNS5PlainAnswer(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels("www.example.com"), 1)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b), "www.example.com.=93.184.216.34")
}

// R-DNS-7: a CNAME chain of two levels is filed under the question name.
func TestRDNS7CNAMEChain(t *testing.T) {
	m := newMsg(responseFlags, 1, 3, 0, 0)
	q := m.question(labels("www.example.com"), 1)
	a := m.rr(q, 5, labels("a.cdn.net"))
	b := m.rr(a, 5, labels("b.cdn.net"))
	m.rr(b, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b), "www.example.com.=93.184.216.34")
}

// R-DNS-7: the folding needs the CNAME before the address record; otherwise the owner is used as decoded.
func TestRDNS7AddressBeforeCNAME(t *testing.T) {
	m := newMsg(responseFlags, 1, 2, 0, 0)
	q := m.question(labels("www.example.com"), 1)
	// Offset of the CNAME's RDATA below: after this A record (16 bytes) and the CNAME's pointer, type,
	// class, TTL and length (12 bytes).
	target := m.raw(nil) + 16 + 12
	m.rr(target, 1, ipBytes("93.184.216.34")) // owner points forward at the CNAME target
	m.rr(q, 5, labels("edge.cdn.net"))
	// The A record's owner pointer is resolved against the whole message, so it reads "edge.cdn.net".
	wantTable(t, walkMsg(t, 1, m.b), "www.example.com.=", "edge.cdn.net.=93.184.216.34")
}

// R-DNS-5 step 5: an NS record (in an answer to an A question) empties the entries of its target name,
// keeping its position; glue A records are then collected under their own owner names.
func TestRDNS5NSAndGlue(t *testing.T) {
	m1 := newMsg(responseFlags, 1, 1, 0, 0)
	q := m1.question(labels("ns1.example.net"), 1)
	m1.rr(q, 1, ipBytes("1.2.3.4"))

	m2 := newMsg(responseFlags, 1, 0, 1, 0) // referral without glue
	q = m2.question(labels("example.com"), 1)
	m2.rr(q, 2, labels("ns1.example.net"))

	m3 := newMsg(responseFlags, 1, 0, 1, 2) // referral with glue and an OPT record
	q = m3.question(labels("_.dspw65.akamai.net"), 1)
	ns := m3.rr(q, 2, labels("n6dspw65.akamai.net"))
	m3.rr(ns, 1, ipBytes("23.59.251.221"))
	m3.raw([]byte{0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0}) // OPT: root owner, type 41

	table := walkMsg(t, 1, m1.b)
	wantTable(t, table, "ns1.example.net.=1.2.3.4")
	table = walkMsg(t, 1, m1.b, m2.b)
	wantTable(t, table, "ns1.example.net.=", "example.com.=")
	table = walkMsg(t, 1, m1.b, m2.b, m3.b)
	wantTable(t, table, "ns1.example.net.=", "example.com.=", "_.dspw65.akamai.net.=", "n6dspw65.akamai.net.=23.59.251.221")
}

// R-DNS-5 step 5: the NS reset happens only for A/AAAA questions.
func TestRDNS5NSIgnoredForOtherQuestions(t *testing.T) {
	m1 := newMsg(responseFlags, 1, 1, 0, 0)
	q := m1.question(labels("ns1.example.net"), 1)
	m1.rr(q, 1, ipBytes("1.2.3.4"))
	m2 := newMsg(responseFlags, 1, 0, 1, 0)
	q = m2.question(labels("example.com"), 15) // MX
	m2.rr(q, 2, labels("ns1.example.net"))
	wantTable(t, walkMsg(t, 1, m1.b, m2.b), "ns1.example.net.=1.2.3.4", "example.com.=")
}

// R-DNS-4: clean turns label-length bytes into dots, except 45 → '-' and 48..57 → '0'..'9' (quirk);
// '!' and other punctuation inside a label become dots; '_' and case are kept.
func TestRDNS4Clean(t *testing.T) {
	q45 := append(append([]byte{3, 'w', 'w', 'w', 45}, strings.Repeat("a", 45)...), 3, 'c', 'o', 'm', 0)
	q48 := append(append([]byte{3, 'w', 'w', 'w', 48}, strings.Repeat("b", 48)...), 3, 'c', 'o', 'm', 0)
	q57 := append(append([]byte{3, 'w', 'w', 'w', 57}, strings.Repeat("c", 57)...), 3, 'c', 'o', 'm', 0)
	bang := labels("www.Bang!Name.Example.COM")
	len33 := labels("1.c81358859121583b7adf2ace89cb39f44.com") // second label 33 bytes: length byte '!'
	under := labels("_.dspw65.akamai.net")
	cases := []struct {
		wire []byte
		want string
	}{
		{q45, "www-" + strings.Repeat("a", 45) + ".com."},
		{q48, "www0" + strings.Repeat("b", 48) + ".com."},
		{q57, "www9" + strings.Repeat("c", 57) + ".com."},
		{bang, "www.Bang.Name.Example.COM."},
		{len33, "1.c81358859121583b7adf2ace89cb39f44.com."},
		{under, "_.dspw65.akamai.net."},
	}
	for _, c := range cases {
		m := newMsg(responseFlags, 1, 0, 0, 0)
		m.question(c.wire, 1)
		wantTable(t, walkMsg(t, 1, m.b), c.want+"=")
	}
	if got := clean([]byte("a!b/c:d@e[f`g{h\x7fi-j_k\x00")); got != "a.b.c.d.e.f.g.h.i-j_k." {
		t.Errorf("clean = %q", got)
	}
}

// R-DNS-4, R-DNS-6: an address record reached through 0xC00C is filed under the *decoded* owner, which
// is not cleaned: case and '!' survive there, while the question is registered cleaned.
func TestRDNS6OwnerNotCleaned(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels("Bang!Name.Example.COM"), 1)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b), "Bang.Name.Example.COM.=", "Bang!Name.Example.COM.=93.184.216.34")
}

// R-DNS-3, R-DNS-6, R-ERR-7: a non-ASCII first label leaves the question unregistered and gives no owner;
// a non-ASCII label later ends the decoded name at the previous label.
func TestRDNS6NonASCII(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question([]byte{4, 0xff, 'a', 'b', 'c', 3, 'c', 'o', 'm', 0}, 1)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b))

	m = newMsg(responseFlags, 1, 1, 0, 0)
	q = m.question([]byte{3, 'w', 'w', 'w', 1, 0xff, 3, 'c', 'o', 'm', 0}, 1)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b), "www.=93.184.216.34")

	n, err := name(nil, []byte{3, 'w', 'w', 'w', 1, 0xff, 3, 'c', 'o', 'm', 0}, false, 0)
	if n != "www" || err != nil {
		t.Errorf("name(www.\\xff.com) = %q, %v", n, err)
	}
}

// R-DNS-6: a zero byte inside a label ends the name with clean(label)[1:].
func TestRDNS6ZeroInsideLabel(t *testing.T) {
	n, err := name(nil, []byte{5, 'a', 'b', 0, 'c', '!', 3, 'c', 'o', 'm', 0}, false, 0)
	if n != "b.c." || err != nil { // lab = "ab\x00c!", clean → "ab.c.", without its first character
		t.Errorf("got %q, %v", n, err)
	}
}

// R-DNS-6: compression-pointer loops terminate (the reference recursed until the interpreter's limit;
// the record is abandoned here).
func TestRDNS6PointerLoop(t *testing.T) {
	m := newMsg(responseFlags, 1, 2, 0, 0)
	q := m.question(labels("www.example.com"), 1)
	self := len(m.b)
	m.rr(self, 1, ipBytes("93.184.216.34"))       // owner pointer points at itself
	m.rr(q, 5, []byte{0xC0, byte(len(m.b) + 12)}) // CNAME whose target points at itself
	done := make(chan *AnswerTable)
	go func() {
		table := NewAnswerTable()
		var w dnsWalker
		w.walk(table, dnsFrame("192.168.1.1", "192.168.1.2", m.b), 42, 1)
		done <- table
	}()
	select {
	case table := <-done:
		wantTable(t, table, "www.example.com.=")
	case <-time.After(5 * time.Second):
		t.Fatal("the walk did not terminate")
	}
	// Two pointers pointing at each other.
	b := []byte{0xC0, 2, 0xC0, 0}
	if n, err := name(b, b, false, 0); n != "" || err == nil {
		t.Errorf("mutual pointers: %q, %v", n, err)
	}
}

// R-DNS-2: only responses with opcode 0 are parsed; the RCODE is not checked.
func TestRDNS2ResponsesOnly(t *testing.T) {
	build := func(flags uint16) []byte {
		m := newMsg(flags, 1, 1, 0, 0)
		q := m.question(labels("www.example.com"), 1)
		m.rr(q, 1, ipBytes("93.184.216.34"))
		return m.b
	}
	wantTable(t, walkMsg(t, 1, build(0x0100))) // query
	wantTable(t, walkMsg(t, 1, build(0x8800))) // opcode 1
	wantTable(t, walkMsg(t, 1, build(0x8183)), "www.example.com.=93.184.216.34")
	wantTable(t, walkMsg(t, 1, build(0x8700)), "www.example.com.=93.184.216.34") // AA, TC, RD set
}

// R-DNS-5: PTR answers hold names, never addresses, so they never name anything (not stored).
func TestRDNS5PTR(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels("34.216.184.93.in-addr.arpa"), 12)
	m.rr(q, 12, labels("example.com"))
	table := walkMsg(t, 1, m.b)
	table.Each(func(n string, a Answer) {
		if _, ok := ParseAddr(a.Answer); ok {
			t.Errorf("PTR stored an address %q under %q", a.Answer, n)
		}
	})
}

// R-DNS-5: AAAA answers are filed with R-OUT-7 text.
func TestRDNS5AAAA(t *testing.T) {
	m := newMsg(responseFlags, 1, 2, 0, 0)
	q := m.question(labels("v6.example.com"), 28)
	m.rr(q, 28, ipBytes("2600:1403:9c00:30::17c1:6a8e"))
	m.rr(q, 28, ipBytes("::ffff:1.2.3.4"))
	wantTable(t, walkMsg(t, 1, m.b), "v6.example.com.=2600:1403:9c00:30::17c1:6a8e,::ffff:102:304")
}

// The walker survives every truncation of a real response and garbage question counts (R-CONV-1).
func TestRDNSWalkTruncations(t *testing.T) {
	m := newMsg(responseFlags, 1, 3, 1, 1)
	q := m.question(labels("www.example.com"), 1)
	a := m.rr(q, 5, labels("a.cdn.net"))
	m.rr(a, 1, ipBytes("93.184.216.34"))
	m.rr(a, 28, ipBytes("2001:db8::1"))
	ns := m.rr(q, 2, labels("ns.cdn.net"))
	m.rr(ns, 1, ipBytes("5.6.7.8"))
	frame := dnsFrame("192.168.1.1", "192.168.1.2", m.b)
	var w dnsWalker
	for n := 0; n <= len(frame); n++ {
		w.walk(NewAnswerTable(), frame[:n], 42, 1)
	}
	garbled := append([]byte{}, m.b...)
	binary.BigEndian.PutUint16(garbled[4:6], 0xFFFF)
	w.walk(NewAnswerTable(), dnsFrame("192.168.1.1", "192.168.1.2", garbled), 42, 1)
}

// R-DNS-1 and R-NAME-2 through the engine: answers from port-53 frames name later flows; DNS inside
// VLAN tags (by default), GRE or a cooked capture is not seen; DNS over TCP is mis-parsed (quirk).
func TestRDNS1EngineFrames(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels("www.example.com"), 1)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	answer := m.b
	tcp := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, nil)))

	named := func(frames ...in) string {
		s := run(Options{}, append(frames, ethAt(10, tcp))...)
		for _, f := range s.Flows {
			if f.DstAddr == "93.184.216.34" {
				return f.Name + "/" + string(f.NameSource)
			}
		}
		return "no flow"
	}
	if got := named(ethAt(5, dnsFrame("192.168.1.1", "192.168.1.2", answer))); got != "www.example.com/passive" {
		t.Errorf("UDP answer: %s", got)
	}
	// Destination port 53 is enough for the filter (a response sent to port 53).
	toPort53 := ether4(ipv4(17, "192.168.1.1", "192.168.1.2", udpDgram(5353, 53, answer)))
	if got := named(ethAt(5, toPort53)); got != "www.example.com/passive" {
		t.Errorf("answer to port 53: %s", got)
	}
	if got := named(ethAt(5, vlan(7, 0x0800, ipv4(17, "192.168.1.1", "192.168.1.2", udpDgram(53, 50000, answer))))); got != "93.184.216.34/original" {
		t.Errorf("VLAN-tagged answer: %s", got)
	}
	inGRE := ether4(ipv4(47, "10.0.0.1", "10.0.0.2", gre(0x0800, ipv4(17, "192.168.1.1", "192.168.1.2", udpDgram(53, 50000, answer)))))
	if got := named(ethAt(5, inGRE)); got != "93.184.216.34/original" {
		t.Errorf("answer inside GRE: %s", got)
	}
	cooked := in{LinkLinuxSLL, 5, sll(0x0800, ipv4(17, "192.168.1.1", "192.168.1.2", udpDgram(53, 50000, answer)))}
	if got := named(cooked); got != "93.184.216.34/original" {
		t.Errorf("cooked answer: %s", got)
	}
	overTCP := ether4(ipv4(6, "192.168.1.1", "192.168.1.2", tcpSeg(53, 50000, append([]byte{0, byte(len(answer))}, answer...))))
	if got := named(ethAt(5, overTCP)); got != "93.184.216.34/original" {
		t.Errorf("answer over TCP (ID 0xbeef, mis-parsed): %s", got)
	}
	// A fragment (offset ≠ 0) is not seen by "port 53".
	frag := ether4(v4{proto: 17, src: "192.168.1.1", dst: "192.168.1.2", fragOff: 10}.build(udpDgram(53, 50000, answer)))
	if got := named(ethAt(5, frag)); got != "93.184.216.34/original" {
		t.Errorf("fragment: %s", got)
	}
	// With --decode-vlan the tagged answer is seen (an extension).
	s := run(Options{DecodeVLAN: true}, ethAt(5, vlan(7, 0x0800, ipv4(17, "192.168.1.1", "192.168.1.2", udpDgram(53, 50000, answer)))), ethAt(10, tcp))
	if len(s.Flows) != 2 || s.Flows[1].Name != "www.example.com" {
		t.Errorf("DecodeVLAN answer: %+v", s.Flows)
	}
}

// R-DNS-3, R-DNS-7, R-NAME-1 (quirk): with a non-ASCII question Q stays "", so an address reached
// through a CNAME is filed under the name "" — and names its flow "" (passive): the reference writes
// "dst": ":443".
func TestRDNS7EmptyQuestionName(t *testing.T) {
	m := newMsg(responseFlags, 1, 2, 0, 0)
	q := m.question([]byte{4, 0xff, 'a', 'b', 'c', 3, 'c', 'o', 'm', 0}, 1)
	c := m.rr(q, 5, labels("edge.cdn.net")) // the CNAME's owner is its target (R-DNS-5 step 3)
	m.rr(c, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b), "=93.184.216.34") // table[Q] with Q = ""
	tcp := ether4(ipv4(6, "192.168.1.2", "93.184.216.34", tcpSeg(50000, 443, nil)))
	s := run(Options{}, ethAt(1, dnsFrame("192.168.1.1", "192.168.1.2", m.b)), ethAt(2, tcp))
	for _, f := range s.Flows {
		if f.DstAddr == "93.184.216.34" && (f.Name != "" || f.NameSource != SourcePassive) {
			t.Errorf("flow named %q/%s, want \"\"/passive", f.Name, f.NameSource)
		}
	}
}

// R-DNS-3 (quirk): only the first question is registered; with several questions the record walk starts
// at a garbled offset (z is counted from s but used from P), so later records are misread.
func TestRDNS3MultiQuestion(t *testing.T) {
	m := newMsg(responseFlags, 2, 1, 0, 0)
	q := m.question(labels("a.example"), 1)
	m.question(labels("bb.example"), 28)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	table := walkMsg(t, 1, m.b)
	if table.Len() == 0 || table.names[0] != "a.example." {
		t.Errorf("table %q", dump(table))
	}
	for _, n := range table.names {
		if n == "bb.example." {
			t.Errorf("second question registered: %q", dump(table))
		}
	}
	// qd = 0: no question is read, Q stays "" and the walk starts at U + 14.
	m = newMsg(responseFlags, 0, 1, 0, 0)
	m.rr(12, 1, ipBytes("93.184.216.34"))
	_ = walkMsg(t, 1, m.b)
}

// R-DNS-6: "Labels are used verbatim … The reference has no pointer loop protection (it recurses until the
// interpreter's limit); cap the depth in an implementation". docs/conversion.md: "stops after 64
// pointers". A legitimate name of 70 one-character labels (140 bytes, no loop, one pointer) must decode.
func TestRDNS6ManyLabelsAreNotALoop(t *testing.T) {
	ls := make([]string, 70)
	for i := range ls {
		ls[i] = "a"
	}
	long := strings.Join(ls, ".") + ".example"
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels(long), 1)
	m.rr(q, 1, ipBytes("93.184.216.34"))
	wantTable(t, walkMsg(t, 1, m.b), long+".=93.184.216.34")
}
