package flow

import (
	"cmp"
	"encoding/binary"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"unsafe"
)

// This file ends a window: it puts the flows in the reference's order (R-ORD-1, R-ORD-2), exports them
// as Flow records, numbers (R-ID-1) and names them (section 5). It works a chunk of flows at a time, so
// that a large window is exported on every core and can be written while it is exported, without all
// its records in memory at once (Ordered).

// Flush ends the input (or a window): it exports every flow in the reference's order, numbers them
// (R-ID-1), names them with the answers seen and the long-term cache (section 5), and resets the engine
// for the next window. cache may be nil. Flush is Detach followed by Finish.
func (e *Engine) Flush(cache *NameCache) Sample { return e.Detach().Finish(cache) }

// Detached is a window's state taken out of an engine by Detach: its flow states, early exports, DNS
// answers and active addresses. Finish (or Order) turns it into the window's flows; it may run on
// another goroutine while the engine goes on with the next window.
type Detached struct {
	start   float64
	states  stateStore
	names   []string
	n       int
	evicted []Flow
	answers *AnswerTable
	active  map[[17]byte]struct{}
}

// Detach takes the current window's state out of the engine and resets the engine for the next
// window, in time independent of the number of flows (only the DNS answers carried across windows,
// a bounded table, are copied). The engine's statistics go on accumulating.
func (e *Engine) Detach() *Detached {
	d := &Detached{start: e.start, states: e.states, names: e.names, n: e.table.n, evicted: e.evicted,
		answers: e.answers, active: e.active}
	e.reset()
	return d
}

// Len returns the number of flows the window holds.
func (d *Detached) Len() int { return d.n + len(d.evicted) }

// Start returns the window's S: its earliest IP frame time, or NoStart.
func (d *Detached) Start() float64 { return d.start }

// Finish returns the window's Sample: every flow in the reference's order, numbered and named with the
// window's answers and the long-term cache (cache may be nil). Call Finish or Order once.
func (d *Detached) Finish(cache *NameCache) Sample {
	o := d.Order(cache)
	s := Sample{Start: o.start, Flows: make([]Flow, o.Len())}
	workers := 1
	if o.Chunks() >= 8 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < o.Chunks(); k += workers {
				lo := k * OrderChunk
				o.fill(k, s.Flows[lo:min(lo+OrderChunk, len(s.Flows))])
			}
		}()
	}
	wg.Wait()
	o.Done()
	return s
}

// OrderChunk is the number of flows of an Ordered chunk.
const OrderChunk = 2048

// Ordered is a finished window whose flows are exported a chunk at a time, in the reference's order:
// Chunk returns the flows k·OrderChunk … of the window, numbered and named. Chunks may be taken in any
// order and on several goroutines at once; Done ends the window once every chunk has been taken.
type Ordered struct {
	start   float64
	states  stateStore
	names   []string
	evicted []Flow
	items   []orderItem
	ids     []string // decimal texts of the identifiers
	tcp     []int32  // per chunk: the TCP flows before it
	udp     []int32  // per chunk: the UDP flows before it
	namer   *namer
	cache   *NameCache
}

// orderItem is a flow with the key of the reference's order: a state (group 1) or an early export
// (group 0, id its index in Detached.evicted).
type orderItem struct {
	rel   float64 // relativeStart (R-FLOW-2)
	seq   uint64  // creating frame, or the early export's index
	class uint8   // pass of the creating frame
	group uint8
	label protoCode
	id    uint32
}

// compareOrder is the reference's order of a window's flows: flows are created by pass, then by
// creating frame (R-ORD-2), after the flows exported early, then sorted stably by relativeStart
// (R-ORD-1) — one total order.
func compareOrder(x, y orderItem) int {
	if c := cmp.Compare(x.rel, y.rel); c != 0 {
		return c
	}
	if x.group != y.group {
		return int(x.group) - int(y.group)
	}
	if x.class != y.class {
		return int(x.class) - int(y.class)
	}
	return cmp.Compare(x.seq, y.seq)
}

var codeOf = map[Protocol]protoCode{ProtoTCP: codeTCP, ProtoUDP: codeUDP, ProtoICMP: codeICMP}

// Order puts the window's flows in the reference's order and prepares their numbering and naming.
// Call Finish or Order once.
func (d *Detached) Order(cache *NameCache) *Ordered {
	// Which answers are flow endpoints (for ACTIVE) on another core while the flows are ordered here.
	var answers *answerAddrs
	states, evicted := &d.states, d.evicted
	findEndpoints := func() {
		answers = newAnswerAddrs(d.answers)
		for j := range evicted {
			answers.seeText(evicted[j].SrcAddr)
			answers.seeText(evicted[j].DstAddr)
		}
		for id := range states.n {
			if st := states.at(id); !st.dead {
				answers.see(st.key.v6, &st.key.a.addr)
				answers.see(st.key.v6, &st.key.b.addr)
			}
		}
	}
	var wg sync.WaitGroup
	if d.n >= 4*OrderChunk && runtime.GOMAXPROCS(0) > 1 {
		wg.Add(1)
		go func() { defer wg.Done(); findEndpoints() }()
	} else {
		findEndpoints()
	}
	items := make([]orderItem, 0, d.n+len(d.evicted))
	for j := range d.evicted {
		f := &d.evicted[j]
		items = append(items, orderItem{rel: fix6(f.First - d.start), seq: uint64(j), label: codeOf[f.Protocol], id: uint32(j)})
	}
	for id := range d.states.n {
		if st := d.states.at(id); !st.dead {
			items = append(items, orderItem{rel: fix6(st.first - d.start), seq: st.seq, class: st.class, group: 1,
				label: st.label, id: id})
		}
	}
	if !slices.IsSortedFunc(items, compareOrder) {
		slices.SortFunc(items, compareOrder)
	}
	o := &Ordered{start: d.start, states: d.states, names: d.names, evicted: d.evicted, items: items, cache: cache}
	chunks := o.Chunks()
	o.tcp, o.udp = make([]int32, chunks), make([]int32, chunks)
	var tcp, udp int32
	for i, it := range items {
		if i%OrderChunk == 0 {
			o.tcp[i/OrderChunk], o.udp[i/OrderChunk] = tcp, udp
		}
		switch it.label {
		case codeTCP:
			tcp++
		case codeUDP:
			udp++
		}
	}
	o.ids = decimals(int(max(tcp, udp)))
	wg.Wait()
	d.states, d.evicted = stateStore{}, nil
	o.namer = newNamer(d.answers, answers.activeFunc(d.active))
	return o
}

// Start returns the window's S: its earliest IP frame time, or NoStart.
func (o *Ordered) Start() float64 { return o.start }

// Len returns the number of flows.
func (o *Ordered) Len() int { return len(o.items) }

// Chunks returns the number of chunks.
func (o *Ordered) Chunks() int { return (len(o.items) + OrderChunk - 1) / OrderChunk }

// Chunk returns chunk k's flows in buf's memory (grown as needed).
func (o *Ordered) Chunk(k int, buf []Flow) []Flow {
	n := min(OrderChunk, len(o.items)-k*OrderChunk)
	buf = slices.Grow(buf[:0], n)[:n]
	o.fill(k, buf)
	return buf
}

// Done updates the long-term cache with the window's answers (R-CACHE-3), after every flow was named.
func (o *Ordered) Done() {
	if o.cache != nil && len(o.items) > 0 {
		o.namer.updateCache(o.cache)
	}
}

// fill writes chunk k's flows into out, which has the chunk's length.
func (o *Ordered) fill(k int, out []Flow) {
	items := o.items[k*OrderChunk:][:len(out)]
	prefault(out)
	// The texts of the chunk's addresses and ports share one string: they live and die together.
	text := make([]byte, 0, 40*len(items))
	ends := make([][4]int32, len(items))
	for i, it := range items {
		if it.group == 0 {
			out[i] = o.evicted[it.id]
			ends[i] = [4]int32{int32(len(text)), int32(len(text)), int32(len(text)), int32(len(text))}
			continue
		}
		text, ends[i] = exportTo(&out[i], o.states.at(it.id), o.names, text)
	}
	all := string(text)
	prev := int32(0)
	tcp, udp := o.tcp[k], o.udp[k]
	for i, it := range items {
		f := &out[i]
		if it.group == 1 {
			e := ends[i]
			f.setTexts(all[prev:], [4]int32{e[0] - prev, e[1] - prev, e[2] - prev, e[3] - prev})
			prev = e[3]
		}
		// Finalize's work (R-FLOW-2, R-FLOW-3, R-ID-1), then naming (R-NAME-2) and R-OUT-8.
		f.RelativeStart = it.rel
		if !f.DurationUnknown {
			f.Duration = fix6(f.Last - f.First)
		}
		switch it.label {
		case codeTCP:
			f.Identifier = o.ids[tcp]
			tcp++
		case codeUDP:
			f.Identifier = o.ids[udp]
			udp++
		default:
			f.Identifier = ""
		}
		o.namer.name(f, o.cache)
		if f.SrcBytes > 0 && f.SrcPkts == 0 {
			f.SrcPkts = 1
		}
		if f.DstBytes > 0 && f.DstPkts == 0 {
			f.DstPkts = 1
		}
	}
}

// answerAddrs is the set of a window's DNS answer addresses, as written (normalised, R-OUT-7), and
// which of them are an endpoint of a flow. A bit filter in front of the map keeps the test of every
// flow's endpoints cheap: most are no answer.
type answerAddrs struct {
	byAddr   map[[17]byte]string
	endpoint map[string]bool // answer text → an endpoint of a flow
	filter   []uint64        // bit filterBit(address) is set for every answer address
}

const filterBits = 18

func filterBit(k *[17]byte) uint64 {
	h := mix(binary.LittleEndian.Uint64(k[1:9])^0x9e3779b97f4a7c15, binary.LittleEndian.Uint64(k[9:17])^uint64(k[0])<<7)
	return h >> (64 - filterBits)
}

func newAnswerAddrs(answers *AnswerTable) *answerAddrs {
	n := answers.Answers()
	a := &answerAddrs{byAddr: make(map[[17]byte]string, n), endpoint: make(map[string]bool, n),
		filter: make([]uint64, 1<<filterBits/64)}
	var buf [64]byte
	answers.Each(func(_ string, ans Answer) {
		addr, ok := ParseAddr(ans.Answer)
		if !ok || string(AppendAddrText(buf[:0], addr)) != ans.Answer {
			return // written otherwise than a flow's endpoint is: never one
		}
		k := addrKeyOf(addr)
		a.byAddr[k] = ans.Answer
		a.endpoint[ans.Answer] = false
		bit := filterBit(&k)
		a.filter[bit/64] |= 1 << (bit % 64)
	})
	return a
}

// see marks the answer that is a flow endpoint's address, if any.
func (a *answerAddrs) see(v6 bool, addr *[16]byte) {
	k := addrKey(v6, addr)
	if bit := filterBit(&k); a.filter[bit/64]&(1<<(bit%64)) == 0 {
		return
	}
	if s, ok := a.byAddr[k]; ok {
		a.endpoint[s] = true
	}
}

// seeText marks the answer that is the text of a flow's endpoint, if any.
func (a *answerAddrs) seeText(s string) {
	if _, ok := a.endpoint[s]; ok {
		a.endpoint[s] = true
	}
}

// activeFunc returns the ACTIVE test of R-NAME-1, once every flow was seen: non-local addresses that
// were an endpoint of a flow or of another IP frame of at least 34 bytes (active).
func (a *answerAddrs) activeFunc(active map[[17]byte]struct{}) func(string) bool {
	return func(s string) bool {
		if a.endpoint[s] {
			addr, ok := ParseAddr(s)
			return ok && !IsLocal(addr)
		}
		return isActive(active, s)
	}
}

// export turns a flow state into a Flow record; names are the session names of its window.
func export(st *flowState, names []string) Flow {
	var fl Flow
	var buf [96]byte
	text, ends := exportTo(&fl, st, names, buf[:0])
	fl.setTexts(string(text), ends)
	return fl
}

// exportTo fills fl from st, except for the address and port texts: it appends those to text (source
// address, source port, destination address, destination port) and returns their ends.
func exportTo(fl *Flow, st *flowState, names []string, text []byte) ([]byte, [4]int32) {
	src, dst := st.key.a, st.key.b
	s, d := 0, 1
	if st.srcSide == 1 {
		src, dst = dst, src
		s, d = 1, 0
	}
	*fl = Flow{
		Protocol: st.label.label(),
		SrcPkts:  st.pkts[s], SrcBytes: st.bytes[s],
		DstPkts: st.pkts[d], DstBytes: st.bytes[d],
		First: st.first, Last: st.last,
	}
	var ends [4]int32
	text = AppendAddrText(text, addrOf(st.key.v6, &src.addr))
	ends[0] = int32(len(text))
	if !st.key.icmp {
		text = strconv.AppendUint(text, uint64(src.port), 10)
	}
	ends[1] = int32(len(text))
	text = AppendAddrText(text, addrOf(st.key.v6, &dst.addr))
	ends[2] = int32(len(text))
	if !st.key.icmp {
		text = strconv.AppendUint(text, uint64(dst.port), 10)
	}
	ends[3] = int32(len(text))
	if st.name != 0 && int(st.nameSide) == d {
		fl.Name = names[st.name-1]
		fl.NameSource = SourceSession
	}
	return text, ends
}

// setTexts sets the address and port texts from text, which starts with the four texts exportTo
// appended, and their ends.
func (fl *Flow) setTexts(text string, ends [4]int32) {
	fl.SrcAddr = text[:ends[0]]
	fl.SrcPort = text[ends[0]:ends[1]]
	fl.DstAddr = text[ends[1]:ends[2]]
	fl.DstPort = text[ends[2]:ends[3]]
}

// prefault writes a number into every page of flow records about to be written. When the records are
// fresh memory, writing their strings first would, while the garbage collector marks, read each page
// before writing it (the write barrier loads the old pointers), which maps the shared zero page and
// then copies it on the write with a TLB flush on every core: several times the cost of the single
// fault a plain write takes.
func prefault(flows []Flow) {
	step := max(1, 4096/int(unsafe.Sizeof(Flow{})))
	for i := 0; i < len(flows); i += step {
		flows[i].SrcPkts = 0
	}
	if len(flows) > 0 {
		flows[len(flows)-1].SrcPkts = 0
	}
}
