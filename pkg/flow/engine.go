package flow

import (
	"encoding/binary"
	"math"
	"net/netip"
	"strconv"

	"github.com/flowfleet/flowfleet/internal/pynum"
)

// Options selects the engine's behaviour beyond the reference's.
type Options struct {
	// DecodeVLAN decodes 802.1Q/QinQ-tagged Ethernet frames; the reference drops them (R-PCAP-3).
	DecodeVLAN bool
	// SessionNames names destinations from TLS SNI and HTTP Host (source "session"); the reference has
	// no payload inspection (R-PCAP-6).
	SessionNames bool
	// MaxFlows bounds the flow table; 0 means unbounded (offline conversion). When full, the flow with
	// the oldest last packet is exported early (see Evicted).
	MaxFlows int
	// MaxAnswers bounds the DNS answer table (0: DefaultMaxAnswers).
	MaxAnswers int
	// MaxActive bounds the set of non-local addresses seen (0: DefaultMaxActive).
	MaxActive int
	// CarryAnswers keeps the DNS answers of the last CarryAnswers seconds (by frame time) across Flush,
	// so that a flow in the next window is still named from a lookup made just before the boundary: the
	// short-term name cache of the reference's streaming collector (R-STR-6). 0 for none (conversion).
	CarryAnswers float64
}

// DefaultMaxActive is the default bound of the set of non-local addresses an engine remembers.
const DefaultMaxActive = 1 << 22

// Stats counts what the engine saw.
type Stats struct {
	Frames    uint64 // frames offered
	IPFrames  uint64 // frames that passed the IP pre-filter (R-PCAP-3)
	Handled   uint64 // frames counted into a flow
	Short     uint64 // IP frames of 34 bytes or fewer (R-DEC-0)
	Ignored   uint64 // IP frames of other protocols or that could not be decoded
	Truncated uint64 // frames the reference would abort on (R-DEC-11), skipped here
	DNS       uint64 // DNS responses walked
	Evicted   uint64 // flows exported early because the table was full
}

type endpoint struct {
	addr [16]byte
	port uint16
}

type flowKey struct {
	v6, icmp bool
	a, b     endpoint // a <= b
}

type flowState struct {
	// The fields every frame of the flow touches come first, so that they share a cache line or two.
	class    uint8 // pass of the creating frame (R-PCAP-5)
	srcSide  uint8 // 0: key.a is the flow source
	nameSide uint8
	probes   uint8 // payload packets inspected for a session name
	last     float64
	pkts     [2]int64
	bytes    [2]int64
	name     string // session name (SNI/Host), for the side nameSide

	key   flowKey
	seq   uint64 // index of the creating frame
	first float64
	label Protocol
	index int // position in Engine.list
	// prev and next link the states in order of their last packet, oldest first, when the table is
	// bounded (Options.MaxFlows).
	prev, next *flowState
}

// Engine assembles flows from frames (section 3) and names them (section 5). See the package doc.
type Engine struct {
	opts    Options
	dec     decoder
	dns     dnsWalker
	norm    []byte
	start   float64
	seq     uint64
	flows   map[flowKey]*flowState
	list    []*flowState
	active  map[[17]byte]struct{}
	answers *AnswerTable
	evicted []Flow
	slab    []flowState
	stats   Stats
	latest  float64    // latest frame time seen
	oldest  *flowState // least recently used state (bounded tables only)
	newest  *flowState
}

// NewEngine returns an empty engine.
func NewEngine(opts Options) *Engine {
	e := &Engine{opts: opts}
	e.reset()
	return e
}

func (e *Engine) reset() {
	old := e.answers
	e.start = NoStart
	e.flows = make(map[flowKey]*flowState)
	e.list = nil
	e.active = make(map[[17]byte]struct{})
	e.answers = NewAnswerTable()
	e.answers.MaxEntries = e.opts.MaxAnswers
	e.evicted = nil
	e.slab = nil
	e.oldest, e.newest = nil, nil
	if old != nil && e.opts.CarryAnswers > 0 {
		since := e.latest - e.opts.CarryAnswers
		old.Each(func(n string, a Answer) {
			if a.Time >= since {
				e.answers.Add(n, a.Time, a.Answer)
			}
		})
	}
}

// Stats returns the counters so far.
func (e *Engine) Stats() Stats { return e.stats }

// Start returns S so far: the earliest IP frame time, or NoStart.
func (e *Engine) Start() float64 { return e.start }

// Len returns the number of live flows.
func (e *Engine) Len() int { return len(e.flows) }

// Answers returns the DNS answer table of the current window.
func (e *Engine) Answers() *AnswerTable { return e.answers }

// Packet processes one frame captured at time t (seconds since the epoch, dec of the pcap time, R-PCAP-2).
// The frame's bytes are not retained.
func (e *Engine) Packet(link LinkType, t float64, data []byte) {
	var p prepared
	if ok, payload := e.prepare(link, t, data, &p); ok {
		e.apply(&p, payload)
	}
}

// prepared is what the per-frame stage (prepare) learns about a frame that counts into a flow, for the
// flow-table stage (apply). The two stages touch disjoint parts of the engine, so that a Pipeline can
// run them on two goroutines.
type prepared struct {
	t            float64
	seq          uint64
	payload      int64
	src, dst     [16]byte
	portA, portB uint16
	class        uint8
	v6           bool
	label        Protocol
	probe        bool   // a TCP segment with payload: a session-name probe (Options.SessionNames)
	name         string // SessionName of the payload, when computed ahead (Pipeline)
}

// prepare is the per-frame stage: the IP pre-filter, the DNS walk, decoding. It owns the frame counters,
// the DNS answers and the set of active addresses. It returns true, with p filled in, for a frame that
// counts into a flow, and for a session-name probe its payload (valid as long as data).
func (e *Engine) prepare(link LinkType, t float64, data []byte, p *prepared) (bool, []byte) {
	e.stats.Frames++
	f, kind := e.normalize(link, data)
	if kind == kindNotIP {
		return false, nil
	}
	e.stats.IPFrames++
	e.seq++
	if t < e.start {
		e.start = t // R-PCAP-4
	}
	if t > e.latest {
		e.latest = t
	}
	if isDNSFrame(f, kind) { // R-DNS-1
		if d := e.dec.decode(f, false); d.dataOff >= 0 {
			e.stats.DNS++
			e.dns.walk(e.answers, d.frame, d.dataOff, t)
		}
	}
	if len(f) < 34 {
		e.stats.Short++
		return false, nil
	}
	class := outerClass(f, kind)
	r := e.dec.decodeFrame(f)
	if len(f) == 34 || !r.handled { // R-DEC-0, R-DEC-10
		if len(f) == 34 {
			e.stats.Short++
		} else if r.truncated {
			e.stats.Truncated++
		} else {
			e.stats.Ignored++
		}
		if r.addrs {
			e.see(r.v6, &r.src)
			e.see(r.v6, &r.dst)
		}
		return false, nil
	}
	*p = prepared{t: t, seq: e.seq, payload: r.payload, src: r.src, dst: r.dst, portA: r.portA, portB: r.portB,
		class: class, v6: r.v6, label: r.label}
	if e.opts.SessionNames && r.label == ProtoTCP && r.dataOff >= 0 && r.dataOff < len(r.frame) {
		p.probe = true
		return true, r.frame[r.dataOff:]
	}
	return true, nil
}

// apply is the flow-table stage: it counts a prepared frame into its flow. It owns the flow table, the
// early exports and the Handled and Evicted counters. payload is the probe's payload, or nil when
// p.name was computed ahead.
func (e *Engine) apply(p *prepared, payload []byte) {
	e.stats.Handled++
	icmp := p.label == ProtoICMP
	a := endpoint{addr: p.src, port: p.portA}
	b := endpoint{addr: p.dst, port: p.portB}
	key := flowKey{v6: p.v6, icmp: icmp}
	sender := uint8(0)
	if less(b, a) {
		key.a, key.b = b, a
		sender = 1
	} else {
		key.a, key.b = a, b
	}
	st := e.flows[key]
	if st == nil {
		if e.opts.MaxFlows > 0 && len(e.flows) >= e.opts.MaxFlows {
			e.evictOldest()
		}
		st = e.newState()
		*st = flowState{key: key, class: p.class, seq: p.seq, first: p.t, label: p.label, index: len(e.list)}
		st.srcSide = decide(p, sender)
		e.flows[key] = st
		e.list = append(e.list, st)
	} else if p.class < st.class {
		// The reference's earlier pass would have created this flow from this frame (R-PKT-2, R-ORD-2).
		st.class, st.seq, st.first, st.label = p.class, p.seq, p.t, p.label
		st.srcSide = decide(p, sender)
	}
	if key.a == key.b {
		sender = 0 // K == K': every frame counts for the source (R-PKT-3)
		st.srcSide = 0
	}
	st.pkts[sender]++
	st.bytes[sender] += p.payload
	if p.t > st.last {
		st.last = p.t
	}
	if e.opts.MaxFlows > 0 {
		e.touch(st)
	}
	if p.probe && st.name == "" && st.probes < maxSessionProbes {
		st.probes++
		n := p.name
		if payload != nil {
			n = SessionName(payload)
		}
		if n != "" {
			st.name = n
			st.nameSide = 1 - sender // the receiver of a ClientHello or request is the named server
		}
	}
}

const maxSessionProbes = 4

// newState returns a zeroed flow state from the current slab; slabs keep the many small states out of
// the allocator's and the collector's way.
func (e *Engine) newState() *flowState {
	if len(e.slab) == cap(e.slab) {
		e.slab = make([]flowState, 0, 1024)
	}
	e.slab = e.slab[:len(e.slab)+1]
	return &e.slab[len(e.slab)-1]
}

// decide applies R-DIR to a flow's creating frame and returns the canonical side of the source.
func decide(p *prepared, sender uint8) uint8 {
	la := IsLocal(addrOf(p.v6, &p.src))
	lb := IsLocal(addrOf(p.v6, &p.dst))
	side := Direction(la, lb, p.label == ProtoICMP, int(p.portA), int(p.portB))
	if side == SideA {
		return sender
	}
	return 1 - sender
}

func less(x, y endpoint) bool {
	xh, yh := binary.BigEndian.Uint64(x.addr[0:8]), binary.BigEndian.Uint64(y.addr[0:8])
	if xh != yh {
		return xh < yh
	}
	xl, yl := binary.BigEndian.Uint64(x.addr[8:16]), binary.BigEndian.Uint64(y.addr[8:16])
	if xl != yl {
		return xl < yl
	}
	return x.port < y.port
}

func addrOf(v6 bool, b *[16]byte) netip.Addr {
	if v6 {
		return netip.AddrFrom16(*b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// see records a non-local address of a frame that made no flow, for the cache update (ACTIVE, R-NAME-1).
// Flow endpoints are in ACTIVE too; Flush checks them directly.
func (e *Engine) see(v6 bool, b *[16]byte) {
	var k [17]byte
	if v6 {
		k[0] = 1
	}
	copy(k[1:], b[:])
	if _, ok := e.active[k]; ok {
		return
	}
	limit := e.opts.MaxActive
	if limit <= 0 {
		limit = DefaultMaxActive
	}
	if len(e.active) >= limit || IsLocal(addrOf(v6, b)) {
		return
	}
	e.active[k] = struct{}{}
}

func isActive(active map[[17]byte]struct{}, s string) bool {
	a, ok := ParseAddr(s)
	if !ok {
		return false
	}
	var k [17]byte
	if a.Is6() {
		k[0] = 1
		b := a.As16()
		copy(k[1:], b[:])
	} else {
		b := a.As4()
		copy(k[1:], b[:])
	}
	_, in := active[k]
	return in
}

// activeFunc returns the ACTIVE test of R-NAME-1 for the answers of this window: non-local addresses that
// were an endpoint of a flow or of another IP frame of at least 34 bytes.
func activeFunc(answers *AnswerTable, active map[[17]byte]struct{}, flows []Flow) func(string) bool {
	endpoint := make(map[string]bool)
	answers.Each(func(_ string, a Answer) { endpoint[a.Answer] = false })
	if len(endpoint) > 0 {
		for i := range flows {
			if _, ok := endpoint[flows[i].SrcAddr]; ok {
				endpoint[flows[i].SrcAddr] = true
			}
			if _, ok := endpoint[flows[i].DstAddr]; ok {
				endpoint[flows[i].DstAddr] = true
			}
		}
	}
	return func(s string) bool {
		if endpoint[s] {
			a, ok := ParseAddr(s)
			return ok && !IsLocal(a)
		}
		return isActive(active, s)
	}
}

// touch moves a state to the newest end of the recency list.
func (e *Engine) touch(st *flowState) {
	if e.newest == st {
		return
	}
	e.unlink(st)
	st.prev = e.newest
	if e.newest != nil {
		e.newest.next = st
	}
	e.newest = st
	if e.oldest == nil {
		e.oldest = st
	}
}

func (e *Engine) unlink(st *flowState) {
	if st.prev != nil {
		st.prev.next = st.next
	} else if e.oldest == st {
		e.oldest = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else if e.newest == st {
		e.newest = st.prev
	}
	st.prev, st.next = nil, nil
}

// evictOldest exports the least recently used flow, to bound the table (Options.MaxFlows).
func (e *Engine) evictOldest() {
	st := e.oldest
	if st == nil {
		return
	}
	e.unlink(st)
	e.stats.Evicted++
	e.evicted = append(e.evicted, export(st))
	delete(e.flows, st.key)
	e.list[st.index] = nil
}

// TakeEvicted returns the flows exported early since the last call, numbered and named with what the
// engine knows now, so that a live sensor can ship them at once instead of holding them until Flush.
// Their RelativeStart and Identifier are provisional: the collector recomputes both for the sample.
func (e *Engine) TakeEvicted(cache *NameCache) []Flow {
	if len(e.evicted) == 0 {
		return nil
	}
	out := e.evicted
	e.evicted = nil
	s := Sample{Start: e.start, Flows: out}
	Finalize(&s, true)
	Name(s.Flows, e.answers, activeFunc(e.answers, e.active, s.Flows), cache)
	FixZeroPackets(s.Flows)
	return s.Flows
}

// export turns a flow state into a Flow record.
func export(st *flowState) Flow {
	src, dst := st.key.a, st.key.b
	s, d := 0, 1
	if st.srcSide == 1 {
		src, dst = dst, src
		s, d = 1, 0
	}
	fl := Flow{
		SrcAddr:  AddrText(addrOf(st.key.v6, &src.addr)),
		DstAddr:  AddrText(addrOf(st.key.v6, &dst.addr)),
		Protocol: st.label,
		SrcPkts:  st.pkts[s], SrcBytes: st.bytes[s],
		DstPkts: st.pkts[d], DstBytes: st.bytes[d],
		First: st.first, Last: st.last,
	}
	if !st.key.icmp {
		fl.SrcPort = strconv.Itoa(int(src.port))
		fl.DstPort = strconv.Itoa(int(dst.port))
	}
	if st.name != "" && int(st.nameSide) == d {
		fl.Name = st.name
		fl.NameSource = SourceSession
	}
	return fl
}

// Flush ends the input (or a window): it exports every flow in the reference's order, numbers them
// (R-ID-1), names them with the answers seen and the long-term cache (section 5), and resets the engine
// for the next window. cache may be nil. Flush is Detach followed by Finish.
func (e *Engine) Flush(cache *NameCache) Sample { return e.Detach().Finish(cache) }

// Detached is a window's state taken out of an engine by Detach: its flow states, early exports, DNS
// answers and active addresses. Finish turns it into the window's Sample; it may run on another
// goroutine while the engine goes on with the next window.
type Detached struct {
	start   float64
	list    []*flowState
	n       int
	evicted []Flow
	answers *AnswerTable
	active  map[[17]byte]struct{}
}

// Detach takes the current window's state out of the engine and resets the engine for the next
// window, in time independent of the number of flows (only the DNS answers carried across windows,
// a bounded table, are copied). The engine's statistics go on accumulating.
func (e *Engine) Detach() *Detached {
	d := &Detached{start: e.start, list: e.list, n: len(e.flows), evicted: e.evicted, answers: e.answers, active: e.active}
	e.reset()
	return d
}

// Len returns the number of flows the window holds.
func (d *Detached) Len() int { return d.n + len(d.evicted) }

// Start returns the window's S: its earliest IP frame time, or NoStart.
func (d *Detached) Start() float64 { return d.start }

// Finish exports every flow in the reference's order (R-ORD-2), numbers them (R-ID-1) and names them
// with the window's answers and the long-term cache (section 5). cache may be nil. Call it once.
func (d *Detached) Finish(cache *NameCache) Sample {
	live := make([]*flowState, 0, d.n)
	for _, st := range d.list {
		if st != nil {
			live = append(live, st)
		}
	}
	d.list = nil
	// Creation order of the reference: by pass, then by the creating frame (R-ORD-2).
	sortStable(live, func(x, y *flowState) bool {
		if x.class != y.class {
			return x.class < y.class
		}
		return x.seq < y.seq
	})
	s := Sample{Start: d.start, Flows: make([]Flow, len(d.evicted)+len(live))}
	copy(s.Flows, d.evicted)
	for i, st := range live {
		s.Flows[len(d.evicted)+i] = export(st)
	}
	Finalize(&s, true)
	Name(s.Flows, d.answers, activeFunc(d.answers, d.active, s.Flows), cache)
	FixZeroPackets(s.Flows)
	return s
}

// Finalize computes relativeStart and duration (R-FLOW-2, R-FLOW-3), sorts the flows stably by
// relativeStart (R-ORD-1) and, for captures, numbers TCP and UDP flows (R-ID-1).
func Finalize(s *Sample, captureIDs bool) {
	for i := range s.Flows {
		f := &s.Flows[i]
		f.RelativeStart = fix6(f.First - s.Start)
		if !f.DurationUnknown {
			f.Duration = fix6(f.Last - f.First)
		}
	}
	sortFlows(s.Flows)
	if !captureIDs {
		return
	}
	tcp, udp := 0, 0
	for i := range s.Flows {
		f := &s.Flows[i]
		switch f.Protocol {
		case ProtoTCP:
			f.Identifier = strconv.Itoa(tcp)
			tcp++
		case ProtoUDP:
			f.Identifier = strconv.Itoa(udp)
			udp++
		default:
			f.Identifier = ""
		}
	}
}

// FixZeroPackets applies R-OUT-8: a side with bytes but no packets gets one packet.
func FixZeroPackets(flows []Flow) {
	for i := range flows {
		f := &flows[i]
		if f.SrcBytes > 0 && f.SrcPkts == 0 {
			f.SrcPkts = 1
		}
		if f.DstBytes > 0 && f.DstPkts == 0 {
			f.DstPkts = 1
		}
	}
}

func fix6(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	return pyFix6(x)
}

// FrameTime returns a frame's time as the reference reads it: dec("<sec>.<usec>") (R-PCAP-2).
func FrameTime(sec uint64, usec uint32) float64 { return pynum.MicroTime(sec, usec) }
