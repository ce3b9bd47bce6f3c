package capture

import (
	"sync/atomic"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Packet is one captured packet. Data is owned by the packet (copied out of the capture ring).
type Packet struct {
	Link flow.LinkType
	Sec  uint64 // capture time, seconds since the epoch
	Usec uint32 // and microseconds (the precision the engine reads, R-PCAP-2)
	Data []byte
}

// NewPacket builds a packet from a capture time.
func NewPacket(link flow.LinkType, t time.Time, data []byte) Packet {
	sec := t.Unix()
	if sec < 0 {
		sec = 0
	}
	return Packet{Link: link, Sec: uint64(sec), Usec: uint32(t.Nanosecond() / 1000), Data: data}
}

// Queue is a bounded queue of packets between capture goroutines and the engine goroutine: Offer never
// blocks, it drops and counts a packet when the queue holds MaxPackets packets or MaxBytes bytes.
type Queue struct {
	ch       chan Packet
	maxBytes int64
	bytes    atomic.Int64
	accepted atomic.Uint64
	dropped  atomic.Uint64
}

// Default queue bounds.
const (
	DefaultQueuePackets = 65536
	DefaultQueueBytes   = 64 << 20
)

// NewQueue returns a queue bounded by packets and bytes (0 for the defaults).
func NewQueue(packets int, bytes int64) *Queue {
	if packets <= 0 {
		packets = DefaultQueuePackets
	}
	if bytes <= 0 {
		bytes = DefaultQueueBytes
	}
	return &Queue{ch: make(chan Packet, packets), maxBytes: bytes}
}

// Offer enqueues p, or drops it when the queue is full; it reports whether p was enqueued.
func (q *Queue) Offer(p Packet) bool {
	n := int64(len(p.Data))
	if q.bytes.Add(n) > q.maxBytes {
		q.bytes.Add(-n)
		q.dropped.Add(1)
		return false
	}
	select {
	case q.ch <- p:
		q.accepted.Add(1)
		return true
	default:
		q.bytes.Add(-n)
		q.dropped.Add(1)
		return false
	}
}

// C is the consumer's end. After receiving a packet the consumer must call Done with it.
func (q *Queue) C() <-chan Packet { return q.ch }

// Done releases the bytes of a packet taken from C.
func (q *Queue) Done(p Packet) { q.bytes.Add(-int64(len(p.Data))) }

// Len returns the number of packets waiting.
func (q *Queue) Len() int { return len(q.ch) }

// Accepted returns the number of packets enqueued so far.
func (q *Queue) Accepted() uint64 { return q.accepted.Load() }

// Dropped returns the number of packets dropped because the queue was full.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }
