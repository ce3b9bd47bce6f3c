package flow

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// finishReference is Finish as it was first written, record by record: the early exports, then the
// states sorted stably by pass and creating frame, numbered and sorted by Finalize, named by Name.
func finishReference(d *Detached, cache *NameCache) Sample {
	var live []*flowState
	for id := range d.states.n {
		if st := d.states.at(id); !st.dead {
			live = append(live, st)
		}
	}
	sortStable(live, func(x, y *flowState) bool {
		if x.class != y.class {
			return x.class < y.class
		}
		return x.seq < y.seq
	})
	s := Sample{Start: d.start}
	s.Flows = append(s.Flows, d.evicted...)
	for _, st := range live {
		s.Flows = append(s.Flows, export(st, d.names))
	}
	Finalize(&s, true)
	Name(s.Flows, d.answers, activeFunc(d.answers, d.active, s.Flows), cache)
	FixZeroPackets(s.Flows)
	return s
}

// Finish (ordered by one key, exported and named a chunk at a time on several goroutines) gives what
// the record-by-record reference gives: with early exports, session names, DNS names and the cache,
// over several chunks.
func TestFinishMatchesReference(t *testing.T) {
	// 9,000 flows: several chunks; 2,000: servers named once each, so that the cache learns them.
	for _, c := range []struct {
		flows int
		opts  Options
	}{{9000, Options{}}, {9000, Options{MaxFlows: 5000, SessionNames: true}}, {9000, Options{MaxFlows: 300}},
		{2000, Options{}}, {2000, Options{MaxFlows: 300}}, {0, Options{MaxFlows: 7}}} {
		frames, opts := benchMix(c.flows), c.opts
		if c.flows == 0 {
			frames = sameTimeMix()
		}
		var got, want Sample
		var gotCache, wantCache *NameCache
		for i, out := range []*Sample{&got, &want} {
			cache := NewNameCache(filepath.Join(t.TempDir(), "cache"))
			cache.Set("23.7.13.18", "cached.example")
			e := NewEngine(opts)
			for j, f := range frames {
				e.Packet(LinkEthernet, f.t, f.data)
				if j == len(frames)/2 && opts.MaxFlows == 300 {
					e.TakeEvicted(nil) // some early exports shipped, the rest kept for the window
				}
			}
			if i == 0 {
				*out, gotCache = e.Flush(cache), cache
			} else {
				*out, wantCache = finishReference(e.Detach(), cache), cache
			}
		}
		if c.flows == 9000 && len(got.Flows) < 2*OrderChunk {
			t.Fatalf("only %d flows", len(got.Flows))
		}
		if got.Start != want.Start || len(got.Flows) != len(want.Flows) {
			t.Fatalf("%+v: start %v, %d flows; want %v, %d", opts, got.Start, len(got.Flows), want.Start, len(want.Flows))
		}
		for i := range want.Flows {
			if !reflect.DeepEqual(got.Flows[i], want.Flows[i]) {
				t.Fatalf("%+v: flow %d\n got %+v\nwant %+v", opts, i, got.Flows[i], want.Flows[i])
			}
		}
		for _, c := range []*NameCache{gotCache, wantCache} {
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
		}
		g, _ := os.ReadFile(gotCache.Path())
		w, _ := os.ReadFile(wantCache.Path())
		if string(g) != string(w) || (c.flows == 2000 && len(w) < 1000) {
			t.Errorf("%+v: caches differ or are nearly empty:\n%.300s\n%.300s", opts, g, w)
		}
	}
}

// sameTimeMix is 40 conversations whose first frames share one time, in two passes (UDP and TCP,
// R-PCAP-5), so that the order rests on the ties: early exports first, then pass, then frame.
func sameTimeMix() []benchFrame {
	var out []benchFrame
	for round := 0; round < 3; round++ {
		for i := 0; i < 40; i++ {
			t := 1700000000.5 + float64(round)
			client := fmt.Sprintf("10.1.0.%d", 1+i)
			if i%2 == 0 {
				out = append(out, benchFrame{t, ether4(ipv4(17, client, "93.184.216.34", udpDgram(uint16(5000+i), 443, make([]byte, 40))))})
			} else {
				out = append(out, benchFrame{t, ether4(ipv4(6, client, "93.184.216.34", tcpSeg(uint16(5000+i), 443, make([]byte, 40))))})
			}
		}
	}
	return out
}
