package flow

import (
	"encoding/binary"
	"math"
	"net/netip"
	"strconv"

	"github.com/flowfleet/flowfleet/pkg/internal/pynum"
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

// flowState is one flow of a window. It holds no pointers (see table.go).
type flowState struct {
	// The fields every frame of the flow touches come first, so that they share a cache line or two.
	class    uint8 // pass of the creating frame (R-PCAP-5)
	srcSide  uint8 // 0: key.a is the flow source
	nameSide uint8
	probes   uint8 // payload packets inspected for a session name
	label    protoCode
	dead     bool   // exported early (Options.MaxFlows)
	name     uint32 // session name (SNI/Host) for the side nameSide: index + 1 in Engine.names, 0 for none
	last     float64
	pkts     [2]int64
	bytes    [2]int64

	key   flowKey
	seq   uint64 // index of the creating frame
	first float64
	// prev and next link the states in order of their last packet, oldest first, when the table is
	// bounded (Options.MaxFlows): ids + 1, 0 for none.
	prev, next uint32
}

// Engine assembles flows from frames (section 3) and names them (section 5). See the package doc.
type Engine struct {
	opts    Options
	dec     decoder
	dns     dnsWalker
	norm    []byte
	start   float64
	seq     uint64
	seed    hashSeed // of the flow table, kept across windows
	table   flowTable
	states  stateStore
	names   []string // session names of the window's flows
	active  map[[17]byte]struct{}
	answers *AnswerTable
	evicted []Flow
	stats   Stats
	latest  float64 // latest frame time seen
	oldest  uint32  // least recently used state + 1 (bounded tables only), 0 for none
	newest  uint32
}

// NewEngine returns an empty engine.
func NewEngine(opts Options) *Engine {
	e := &Engine{opts: opts, seed: newHashSeed()}
	e.reset()
	return e
}

func (e *Engine) reset() {
	old := e.answers
	e.start = NoStart
	e.table = newFlowTable()
	e.states = stateStore{}
	e.names = nil
	e.active = make(map[[17]byte]struct{})
	e.answers = NewAnswerTable()
	e.answers.MaxEntries = e.opts.MaxAnswers
	e.evicted = nil
	e.oldest, e.newest = 0, 0
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
func (e *Engine) Len() int { return e.table.n }

// Answers returns the DNS answer table of the current window.
func (e *Engine) Answers() *AnswerTable { return e.answers }

// Packet processes one frame captured at time t (seconds since the epoch, dec of the pcap time, R-PCAP-2).
// The frame's bytes are not retained.
func (e *Engine) Packet(link LinkType, t float64, data []byte) {
	var p prepared
	if ok, payload := e.prepare(link, t, data, &p); ok {
		name := ""
		if p.probe {
			name = SessionName(payload)
		}
		sender, h := e.canon(&p)
		e.apply(&p, sender, h, name)
	}
}

// prepared is what the per-frame stage (prepare) learns about a frame that counts into a flow, for the
// flow-table stage (apply). The two stages touch disjoint parts of the engine, so that a Pipeline can
// run them on two goroutines.
//
// It fits a cache line: on a Pipeline every record crosses from one core to the other.
type prepared struct {
	t       float64
	seq     uint64
	payload int32
	key     flowKey // the frame's endpoints, sender first; apply puts them in the key's order
	class   uint8
	label   protoCode
	probe   bool // a TCP segment with payload: a session-name probe (Options.SessionNames)
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
		var d decoded
		if e.dec.decode(f, false, &d); d.dataOff >= 0 {
			e.stats.DNS++
			e.dns.walk(e.answers, d.frame, d.dataOff, t)
		}
	}
	if len(f) < 34 {
		e.stats.Short++
		return false, nil
	}
	class := outerClass(f, kind)
	var r decoded
	e.dec.decodeFrame(f, &r)
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
	p.t, p.seq, p.payload, p.class, p.label, p.probe = t, e.seq, int32(r.payload), class, r.label, false
	p.key = flowKey{v6: r.v6, icmp: r.label == codeICMP, a: endpoint{addr: r.src, port: r.portA},
		b: endpoint{addr: r.dst, port: r.portB}}
	if e.opts.SessionNames && r.label == codeTCP && r.dataOff >= 0 && r.dataOff < len(r.frame) {
		p.probe = true
		return true, r.frame[r.dataOff:]
	}
	return true, nil
}

// canon puts a prepared frame's endpoints in its flow key's order and returns the side of the sender
// (0: key.a) and the key's hash: the start of the flow-table stage.
func (e *Engine) canon(p *prepared) (uint8, uint64) {
	sender := uint8(0)
	if less(p.key.b, p.key.a) {
		p.key.a, p.key.b = p.key.b, p.key.a
		sender = 1
	}
	return sender, e.seed.hash(&p.key)
}

// apply is the flow-table stage: it counts a prepared frame, canon'ed, into its flow. It owns the
// flow table, the early exports and the Handled and Evicted counters. name is the SessionName of a
// probe's payload.
func (e *Engine) apply(p *prepared, sender uint8, h uint64, name string) {
	e.stats.Handled++
	id, ok := e.table.find(&e.states, &p.key, h)
	var st *flowState
	if !ok {
		if e.opts.MaxFlows > 0 && e.table.n >= e.opts.MaxFlows {
			e.evictOldest()
		}
		id, st = e.states.add()
		*st = flowState{key: p.key, class: p.class, seq: p.seq, first: p.t, label: p.label}
		st.srcSide = decide(p, sender)
		e.table.insert(h, id)
	} else if st = e.states.at(id); p.class < st.class {
		// The reference's earlier pass would have created this flow from this frame (R-PKT-2, R-ORD-2).
		st.class, st.seq, st.first, st.label = p.class, p.seq, p.t, p.label
		st.srcSide = decide(p, sender)
	}
	if p.key.a == p.key.b {
		sender = 0 // K == K': every frame counts for the source (R-PKT-3)
		st.srcSide = 0
	}
	st.pkts[sender]++
	st.bytes[sender] += int64(p.payload)
	if p.t > st.last {
		st.last = p.t
	}
	if e.opts.MaxFlows > 0 {
		e.makeNewest(id, st)
	}
	if p.probe && st.name == 0 && st.probes < maxSessionProbes {
		st.probes++
		if name != "" {
			e.names = append(e.names, name)
			st.name = uint32(len(e.names))
			st.nameSide = 1 - sender // the receiver of a ClientHello or request is the named server
		}
	}
}

const maxSessionProbes = 4

// decide applies R-DIR to a flow's creating frame and returns the canonical side of the source.
func decide(p *prepared, sender uint8) uint8 {
	src, dst := &p.key.a, &p.key.b
	if sender == 1 {
		src, dst = dst, src
	}
	la := IsLocal(addrOf(p.key.v6, &src.addr))
	lb := IsLocal(addrOf(p.key.v6, &dst.addr))
	side := Direction(la, lb, p.label == codeICMP, int(src.port), int(dst.port))
	if side == SideA {
		return sender
	}
	return 1 - sender
}

// less orders a flow's two endpoints for its key. Any fixed order will do (it is not the order of the
// addresses): words in the machine's order are cheaper to compare.
func less(x, y endpoint) bool {
	xh, yh := binary.LittleEndian.Uint64(x.addr[0:8]), binary.LittleEndian.Uint64(y.addr[0:8])
	if xh != yh {
		return xh < yh
	}
	xl, yl := binary.LittleEndian.Uint64(x.addr[8:16]), binary.LittleEndian.Uint64(y.addr[8:16])
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
// Flow endpoints are in ACTIVE too; the end of the window finds them among the flows (answerAddrs).
func (e *Engine) see(v6 bool, b *[16]byte) {
	k := addrKey(v6, b)
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

// addrKey is an address as a map key: the IPv6 flag, then the address (IPv4 in its first 4 bytes).
func addrKey(v6 bool, b *[16]byte) [17]byte {
	var k [17]byte
	if v6 {
		k[0] = 1
	}
	copy(k[1:], b[:])
	return k
}

// addrKeyOf returns the key of a parsed address.
func addrKeyOf(a netip.Addr) [17]byte {
	b := a.As16()
	if a.Is4() {
		var v4 [16]byte
		copy(v4[:], b[12:])
		return addrKey(false, &v4)
	}
	return addrKey(true, &b)
}

func isActive(active map[[17]byte]struct{}, s string) bool {
	a, ok := ParseAddr(s)
	if !ok {
		return false
	}
	_, in := active[addrKeyOf(a)]
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

// makeNewest moves state id to the newest end of the recency list.
func (e *Engine) makeNewest(id uint32, st *flowState) {
	ref := id + 1
	if e.newest == ref {
		return
	}
	e.unlink(ref, st)
	st.prev = e.newest
	if e.newest != 0 {
		e.states.at(e.newest - 1).next = ref
	}
	e.newest = ref
	if e.oldest == 0 {
		e.oldest = ref
	}
}

// unlink takes st (id + 1 = ref) out of the recency list.
func (e *Engine) unlink(ref uint32, st *flowState) {
	if st.prev != 0 {
		e.states.at(st.prev - 1).next = st.next
	} else if e.oldest == ref {
		e.oldest = st.next
	}
	if st.next != 0 {
		e.states.at(st.next - 1).prev = st.prev
	} else if e.newest == ref {
		e.newest = st.prev
	}
	st.prev, st.next = 0, 0
}

// evictOldest exports the least recently used flow, to bound the table (Options.MaxFlows).
func (e *Engine) evictOldest() {
	ref := e.oldest
	if ref == 0 {
		return
	}
	st := e.states.at(ref - 1)
	e.unlink(ref, st)
	e.stats.Evicted++
	e.evicted = append(e.evicted, export(st, e.names))
	e.table.remove(e.seed.hash(&st.key), ref-1)
	st.dead = true
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
		switch s.Flows[i].Protocol {
		case ProtoTCP:
			tcp++
		case ProtoUDP:
			udp++
		}
	}
	ids := decimals(max(tcp, udp))
	tcp, udp = 0, 0
	for i := range s.Flows {
		f := &s.Flows[i]
		switch f.Protocol {
		case ProtoTCP:
			f.Identifier = ids[tcp]
			tcp++
		case ProtoUDP:
			f.Identifier = ids[udp]
			udp++
		default:
			f.Identifier = ""
		}
	}
}

// decimals returns the decimal texts of 0 … n-1, sharing one allocation.
func decimals(n int) []string {
	out := make([]string, n)
	if n == 0 {
		return out
	}
	ends := make([]int32, n)
	b := make([]byte, 0, n*len(strconv.Itoa(n)))
	for i := range n {
		b = strconv.AppendInt(b, int64(i), 10)
		ends[i] = int32(len(b))
	}
	all := string(b)
	prev := int32(0)
	for i, e := range ends {
		out[i] = all[prev:e]
		prev = e
	}
	return out
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
