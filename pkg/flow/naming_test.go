package flow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests of section 5: R-NAME-1, R-NAME-2 (steps 1–5), R-CACHE-1 … R-CACHE-3.

// activeNonLocal is ACTIVE for these tests: every valid non-local address.
func activeNonLocal(s string) bool {
	a, ok := ParseAddr(s)
	return ok && !IsLocal(a)
}

func table(entries ...any) *AnswerTable {
	t := NewAnswerTable()
	for i := 0; i+2 < len(entries); i += 3 {
		t.Add(entries[i].(string), entries[i+1].(float64), entries[i+2].(string))
	}
	return t
}

// R-NAME-2 step 1: a name from the input (session) is kept.
func TestRNAME2Step1Session(t *testing.T) {
	flows := []Flow{{DstAddr: "8.8.8.8", First: 10, Name: "dns.google"}}
	Name(flows, table("other.example.", 1.0, "8.8.8.8"), activeNonLocal, nil)
	if flows[0].Name != "dns.google" || flows[0].NameSource != SourceSession {
		t.Errorf("got %q/%s", flows[0].Name, flows[0].NameSource)
	}
}

// R-NAME-2 step 2: the latest answer at or before the flow start wins; with equal times, the later one in
// table order. testCase13's cdn.krxd.net / consumer.krxd.net example.
func TestRNAME2Step2Passive(t *testing.T) {
	ans := table(
		"cdn.krxd.net.", 1647347035.822655, "151.101.2.133",
		"consumer.krxd.net.", 1647347039.549102, "151.101.2.133",
	)
	flows := []Flow{
		{DstAddr: "151.101.2.133", First: 1647347035.919792},
		{DstAddr: "151.101.2.133", First: 1647347039.549458},
		{DstAddr: "151.101.2.133", First: 1647347039.549102}, // exactly at the answer: t <= first
	}
	Name(flows, ans, activeNonLocal, nil)
	want := []string{"cdn.krxd.net", "consumer.krxd.net", "consumer.krxd.net"}
	for i, w := range want {
		if flows[i].Name != w || flows[i].NameSource != SourcePassive {
			t.Errorf("flow %d: %q/%s, want %q/passive", i, flows[i].Name, flows[i].NameSource, w)
		}
	}
	// Equal times: later in table order wins.
	ans = table("a.example.", 5.0, "1.1.1.1", "b.example.", 5.0, "1.1.1.1")
	flows = []Flow{{DstAddr: "1.1.1.1", First: 6}}
	Name(flows, ans, activeNonLocal, nil)
	if flows[0].Name != "b.example" {
		t.Errorf("tie: %q", flows[0].Name)
	}
}

// R-NAME-2 steps 3 and 4: the cache is asked before an answer that came after the flow start; without a
// cache entry the earliest answer names the flow anyway (quirk). Step 5: the address itself.
func TestRNAME2Steps3To5(t *testing.T) {
	ans := table("sanejs.circl.lu.", 1647347092.506590, "185.194.93.128",
		"later.example.", 1647347099.0, "185.194.93.128")
	cache := NewNameCache("")
	cache.Set("185.194.93.128", "sanejs.circl.lu")
	cache.Set("17.253.97.203", "ocsp-lb.apple.com.akadns.net")

	flows := []Flow{
		{DstAddr: "185.194.93.128", First: 1647347092.375562}, // before the answer: step 3
		{DstAddr: "185.194.93.128", First: 1647347092.547343}, // after it: step 2
		{DstAddr: "17.253.97.203", First: 1},                  // cache only: step 3
		{DstAddr: "192.168.86.1", First: 1},                   // local, nothing: step 5
	}
	Name(flows, ans, activeNonLocal, cache)
	want := []struct {
		name string
		src  NameSource
	}{
		{"sanejs.circl.lu", SourceCache}, {"sanejs.circl.lu", SourcePassive},
		{"ocsp-lb.apple.com.akadns.net", SourceCache}, {"192.168.86.1", SourceOriginal},
	}
	for i, w := range want {
		if flows[i].Name != w.name || flows[i].NameSource != w.src {
			t.Errorf("flow %d: %q/%s, want %q/%s", i, flows[i].Name, flows[i].NameSource, w.name, w.src)
		}
	}

	// Without the cache, step 4: the earliest answer.
	flows = []Flow{{DstAddr: "185.194.93.128", First: 1647347092.375562}}
	Name(flows, ans, activeNonLocal, nil)
	if flows[0].Name != "sanejs.circl.lu" || flows[0].NameSource != SourcePassive {
		t.Errorf("step 4: %q/%s", flows[0].Name, flows[0].NameSource)
	}
}

// R-NAME-1: answers for addresses outside ACTIVE (local destinations) are never used.
func TestRNAME1LocalAnswersUnused(t *testing.T) {
	ans := table("router.lan.", 1.0, "192.168.86.1")
	flows := []Flow{{DstAddr: "192.168.86.1", First: 5}}
	Name(flows, ans, activeNonLocal, nil)
	if flows[0].Name != "192.168.86.1" || flows[0].NameSource != SourceOriginal {
		t.Errorf("got %q/%s", flows[0].Name, flows[0].NameSource)
	}
}

// R-NAME-1: no flows, no naming and no cache update.
func TestRNAME1NoFlows(t *testing.T) {
	cache := NewNameCache("")
	Name(nil, table("x.example.", 1.0, "1.1.1.1"), activeNonLocal, cache)
	if cache.Len() != 0 {
		t.Errorf("cache updated without flows")
	}
}

// R-CACHE-3: every address with a candidate list whose names all agree is set (in place, or appended in
// candidate order); addresses with several names keep their old entry.
func TestRCACHE3Update(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "longTermPassiveDNS.txt")
	if err := os.WriteFile(path, []byte("9.9.9.9 old.example\n1.1.1.1 one.old\n2.2.2.2 two.old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := LoadNameCache(path)
	if err != nil {
		t.Fatal(err)
	}
	ans := table(
		"new.example.", 1.0, "3.3.3.3",
		"one.new.", 1.0, "1.1.1.1",
		"one.new.", 2.0, "1.1.1.1",
		"a.example.", 1.0, "2.2.2.2",
		"b.example.", 2.0, "2.2.2.2",
		"router.lan.", 1.0, "192.168.1.1", // not ACTIVE
	)
	flows := []Flow{{DstAddr: "8.8.8.8", First: 0}}
	Name(flows, ans, activeNonLocal, cache)
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "9.9.9.9 old.example\n1.1.1.1 one.new\n2.2.2.2 two.old\n3.3.3.3 new.example\n"
	if string(got) != want {
		t.Errorf("cache file\n got  %q\n want %q", got, want)
	}
}

// R-CACHE-1: later lines override earlier ones (keeping the first position); a damaged line gives a
// warning, the rest is used, and the file is rebuilt without it on the next save (the reference aborts,
// R-ERR-8).
func TestRCACHE1DamagedLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "longTermPassiveDNS.txt")
	content := "1.1.1.1 one.example\n\n2.2.2.2 two.example extra\n3.3.3.3 three.example\n1.1.1.1 uno.example\n  4.4.4.4 four.example  \n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := LoadNameCache(path)
	if err == nil || !strings.Contains(err.Error(), "2 damaged line(s)") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("warning %v", err)
	}
	if cache == nil {
		t.Fatal("no cache returned with the warning")
	}
	if n, ok := cache.Lookup("1.1.1.1"); !ok || n != "uno.example" {
		t.Errorf("1.1.1.1 → %q, %v", n, ok)
	}
	if n, ok := cache.Lookup("4.4.4.4"); !ok || n != "four.example" {
		t.Errorf("stripped line: %q, %v", n, ok)
	}
	if _, ok := cache.Lookup("2.2.2.2"); ok {
		t.Error("damaged line used")
	}
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "1.1.1.1 uno.example\n3.3.3.3 three.example\n4.4.4.4 four.example\n"
	if string(got) != want {
		t.Errorf("rebuilt\n got  %q\n want %q", got, want)
	}
	again, err := LoadNameCache(path)
	if err != nil || again.Len() != 3 {
		t.Errorf("reload: %v, %d entries", err, again.Len())
	}
}

// R-CACHE-1: a missing file is an empty cache; R-CACHE-3 creates it on save.
func TestRCACHE1Missing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "longTermPassiveDNS.txt")
	cache, err := LoadNameCache(path)
	if err != nil || cache.Len() != 0 {
		t.Fatalf("missing file: %v, %d", err, cache.Len())
	}
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || len(b) != 0 {
		t.Errorf("created %q, %v", b, err)
	}
}

// R-CACHE-2 and R-NAME-2 through the engine: a DNS answer before a flow names it (passive) and the cache
// learns the pair; the next conversion with the same cache names a flow without DNS from the cache.
func TestEngineNamingAndCache(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels("contextualizedsecurity.com"), 1)
	m.rr(q, 1, ipBytes("104.19.240.93"))
	dns := dnsFrame("192.168.86.1", "192.168.86.245", m.b)
	tcp := ether4(ipv4(6, "192.168.86.245", "104.19.240.93", tcpSeg(63694, 443, nil)))
	cache := NewNameCache("")

	e := NewEngine(Options{})
	e.Packet(LinkEthernet, 1617652286.320474, dns)
	e.Packet(LinkEthernet, 1617652286.415918, tcp)
	s := e.Flush(cache)
	var f *Flow
	for i := range s.Flows {
		if s.Flows[i].Protocol == ProtoTCP {
			f = &s.Flows[i]
		}
	}
	if f == nil || f.Name != "contextualizedsecurity.com" || f.NameSource != SourcePassive {
		t.Fatalf("flows %+v", s.Flows)
	}
	if n, ok := cache.Lookup("104.19.240.93"); !ok || n != "contextualizedsecurity.com" {
		t.Errorf("cache %q %v", n, ok)
	}
	// The DNS flow itself goes to a local resolver: original.
	for _, fl := range s.Flows {
		if fl.Protocol == ProtoUDP && (fl.Name != "192.168.86.1" || fl.NameSource != SourceOriginal) {
			t.Errorf("DNS flow %q/%s", fl.Name, fl.NameSource)
		}
	}
	e.Packet(LinkEthernet, 1617652300, tcp)
	s = e.Flush(cache)
	if len(s.Flows) != 1 || s.Flows[0].Name != "contextualizedsecurity.com" || s.Flows[0].NameSource != SourceCache {
		t.Errorf("second window %+v", s.Flows)
	}
}

// R-NAME-1 (capture ACTIVE): an answer for an address that appears only in frames that made no flow
// still updates the cache.
func TestEngineActiveIncludesNonFlowFrames(t *testing.T) {
	m := newMsg(responseFlags, 1, 1, 0, 0)
	q := m.question(labels("esp.example.com"), 1)
	m.rr(q, 1, ipBytes("203.0.114.9"))
	dns := dnsFrame("192.168.1.1", "192.168.1.2", m.b)
	esp := ether4(ipv4(50, "192.168.1.2", "203.0.114.9", make([]byte, 40)))
	cache := NewNameCache("")
	e := NewEngine(Options{})
	e.Packet(LinkEthernet, 1, dns)
	e.Packet(LinkEthernet, 2, esp)
	e.Flush(cache)
	if n, ok := cache.Lookup("203.0.114.9"); !ok || n != "esp.example.com" {
		t.Errorf("cache %q %v", n, ok)
	}
	// Without the ESP frame the address is not ACTIVE: no update.
	cache = NewNameCache("")
	e.Packet(LinkEthernet, 1, dns)
	e.Flush(cache)
	if _, ok := cache.Lookup("203.0.114.9"); ok {
		t.Error("an address never seen in a frame was cached")
	}
}

// Save writes only what changed: a cache read from its file and not changed since is not rewritten
// (a sensor saves after every window; a large cache is megabytes).
func TestNameCacheSaveOnlyWhenChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.txt")
	if err := os.WriteFile(path, []byte("1.2.3.4 a.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := LoadNameCache(path)
	if err != nil {
		t.Fatal(err)
	}
	// Changed behind the cache's back: an unchanged cache must leave the file alone.
	if err := os.WriteFile(path, []byte("9.9.9.9 marker.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "9.9.9.9 marker.example\n" {
		t.Fatalf("unchanged cache rewrote its file: %q", b)
	}
	cache.Set("1.2.3.4", "a.example") // the same name: still unchanged
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "9.9.9.9 marker.example\n" {
		t.Fatalf("setting the same name rewrote the file: %q", b)
	}
	cache.Set("5.6.7.8", "b.example")
	if err := cache.Save(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "1.2.3.4 a.example\n5.6.7.8 b.example\n" {
		t.Fatalf("changed cache saved as %q", b)
	}
}
