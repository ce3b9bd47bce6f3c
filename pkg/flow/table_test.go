package flow

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"unsafe"
)

// The flow table finds exactly what a map would, through growth and deletions (the backward shift of
// linear probing), with keys that share their hash's home slots.
func TestFlowTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seed := newHashSeed()
	var states stateStore
	table := newFlowTable()
	want := map[flowKey]uint32{}
	live := []flowKey{}
	key := func() flowKey {
		var k flowKey
		k.v6 = rng.IntN(4) == 0
		k.a.addr[0], k.a.addr[3] = 10, byte(rng.IntN(64))
		k.b.addr[0], k.b.addr[3] = 93, byte(rng.IntN(64))
		k.a.port, k.b.port = uint16(rng.IntN(8)), 443
		return k
	}
	for step := 0; step < 200000; step++ {
		k := key()
		h := seed.hash(&k)
		id, ok := table.find(&states, &k, h)
		wid, wok := want[k]
		if ok != wok || (ok && id != wid) {
			t.Fatalf("step %d: find = %d, %v; want %d, %v", step, id, ok, wid, wok)
		}
		switch {
		case !ok:
			nid, st := states.add()
			st.key = k
			table.insert(h, nid)
			want[k] = nid
			live = append(live, k)
		case rng.IntN(3) == 0: // remove a random live key
			i := rng.IntN(len(live))
			rk := live[i]
			table.remove(seed.hash(&rk), want[rk])
			delete(want, rk)
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
		if table.n != len(want) {
			t.Fatalf("step %d: %d entries, want %d", step, table.n, len(want))
		}
		if 2*table.n > len(table.slots) {
			t.Fatalf("step %d: %d entries in %d slots", step, table.n, len(table.slots))
		}
	}
	for k, wid := range want {
		if id, ok := table.find(&states, &k, seed.hash(&k)); !ok || id != wid {
			t.Fatalf("key %v: %d, %v; want %d", k, id, ok, wid)
		}
	}
}

// The engine's window state holds no pointers, so that the garbage collector never scans a table of a
// million flows (see table.go). This fails when a field with a pointer is added to a flow state.
func TestFlowStateHasNoPointers(t *testing.T) {
	var walk func(reflect.Type) bool
	walk = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func,
			reflect.Interface, reflect.UnsafePointer:
			return true
		case reflect.Array:
			return walk(ty.Elem())
		case reflect.Struct:
			for i := range ty.NumField() {
				if walk(ty.Field(i).Type) {
					t.Errorf("%s.%s holds a pointer", ty.Name(), ty.Field(i).Name)
					return true
				}
			}
		}
		return false
	}
	walk(reflect.TypeOf(flowState{}))
	walk(reflect.TypeOf(orderItem{}))
}

// A bounded table (the sensor's) exports the flow whose last packet is oldest when a new flow needs
// room, and the flows exported early and those left hold every packet an unbounded table counts.
func TestBoundedTableEvictsLeastRecentlyUsed(t *testing.T) {
	const flows, max = 64, 8
	rng := rand.New(rand.NewPCG(3, 4))
	var frames []in
	var conv []int // the conversation of each frame
	for i := 0; i < 3000; i++ {
		c := rng.IntN(flows)
		src := fmt.Sprintf("10.0.0.%d", 1+c)
		t := 1700000000 + float64(i)*0.001
		if rng.IntN(2) == 0 {
			frames = append(frames, ethAt(t, ether4(ipv4(17, src, "93.184.216.34", udpDgram(uint16(40000+c), 53, make([]byte, 10+c))))))
		} else {
			frames = append(frames, ethAt(t, ether4(ipv4(17, "93.184.216.34", src, udpDgram(53, uint16(40000+c), make([]byte, 20))))))
		}
		conv = append(conv, c)
	}
	keyOf := func(c int) string { return fmt.Sprintf("10.0.0.%d:%d-93.184.216.34:53", 1+c, 40000+c) }
	unbounded := run(Options{}, frames...)
	e := NewEngine(Options{MaxFlows: max})
	var early []Flow
	lastSeen := map[string]int{} // flows in the table: the index of their last frame
	for i, f := range frames {
		before := e.Stats().Evicted
		e.Packet(f.link, f.t, f.data)
		if e.Len() > max {
			t.Fatalf("frame %d: %d flows in a table of %d", i, e.Len(), max)
		}
		got := e.TakeEvicted(nil)
		if uint64(len(got)) != e.Stats().Evicted-before {
			t.Fatalf("frame %d: %d evicted flows taken, counter moved by %d", i, len(got), e.Stats().Evicted-before)
		}
		for _, g := range got {
			at, ok := lastSeen[g.Key()]
			if !ok {
				t.Fatalf("frame %d: evicted %s, which is not in the table", i, g.Key())
			}
			for k, other := range lastSeen {
				if other < at {
					t.Fatalf("frame %d: evicted %s (last frame %d) while %s (last frame %d) was older", i, g.Key(), at, k, other)
				}
			}
			delete(lastSeen, g.Key())
		}
		early = append(early, got...)
		lastSeen[keyOf(conv[i])] = i
	}
	if len(early) == 0 {
		t.Fatal("no flow was evicted")
	}
	total := map[string]counts{}
	for _, f := range append(early, e.Flush(nil).Flows...) {
		c := total[f.Key()]
		total[f.Key()] = counts{c.sp + f.SrcPkts, c.sb + f.SrcBytes, c.dp + f.DstPkts, c.db + f.DstBytes}
	}
	if len(total) != len(unbounded.Flows) {
		t.Fatalf("%d flows in the bounded table's output, %d in the unbounded one", len(total), len(unbounded.Flows))
	}
	for _, f := range unbounded.Flows {
		if total[f.Key()] != countsOf(f) {
			t.Errorf("%s: bounded table counted %+v, unbounded %+v", f.Key(), total[f.Key()], countsOf(f))
		}
	}
}

// A prepared frame record fits a cache line (it crosses cores on a Pipeline).
func TestPreparedFitsACacheLine(t *testing.T) {
	if n := unsafe.Sizeof(prepared{}); n > 64 {
		t.Errorf("prepared is %d bytes", n)
	}
}
