package flow

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// This file holds the engine's flow table: the states of a window's flows, and the index that finds a
// flow's state from its key. Neither holds a pointer, so the garbage collector never scans them however
// large a window grows.

// stateStore holds a window's flow states in creation order; a state's id is its position. States are
// allocated in slabs, which never move.
type stateStore struct {
	slabs [][]flowState
	n     uint32
}

const (
	slabBits = 10
	slabSize = 1 << slabBits
)

// at returns the state with the given id.
func (s *stateStore) at(id uint32) *flowState { return &s.slabs[id>>slabBits][id&(slabSize-1)] }

// add returns a new zeroed state and its id.
func (s *stateStore) add() (uint32, *flowState) {
	if int(s.n>>slabBits) == len(s.slabs) {
		s.slabs = append(s.slabs, make([]flowState, slabSize))
	}
	id := s.n
	s.n++
	return id, s.at(id)
}

// flowTable maps flow keys to state ids by open addressing with linear probing over a power-of-two
// array of slots, at most half full. A slot holds the upper 32 bits of the key's hash, which also give
// its home position, and the state's id + 1 in the lower 32 (0: empty): growing and deleting never
// need the keys again, and a probe compares a key only when 32 bits of hash agree.
type flowTable struct {
	slots []uint64
	n     int
}

const minTableSlots = 1024

func newFlowTable() flowTable { return flowTable{slots: make([]uint64, minTableSlots)} }

// hashSeed keys the hash of a table's flow keys: random per engine, so that traffic cannot be crafted
// to collide in it.
type hashSeed [4]uint64

func newHashSeed() hashSeed {
	return hashSeed{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()}
}

// mix folds two words into one through their 128-bit product (as wyhash does).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash returns the seeded hash of a flow key.
func (s *hashSeed) hash(k *flowKey) uint64 {
	const m1, m2 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	x := uint64(k.a.port) | uint64(k.b.port)<<16
	if k.v6 {
		x |= 1 << 32
	}
	if k.icmp {
		x |= 1 << 33
	}
	h1 := mix(binary.LittleEndian.Uint64(k.a.addr[0:8])^s[0], binary.LittleEndian.Uint64(k.a.addr[8:16])^s[1])
	h2 := mix(binary.LittleEndian.Uint64(k.b.addr[0:8])^s[2], binary.LittleEndian.Uint64(k.b.addr[8:16])^s[3])
	return mix(h1^x^m1, h2^m2)
}

func (t *flowTable) home(h uint64) uint64 { return (h >> 32) & uint64(len(t.slots)-1) }

// find returns the id of the state with key k (hash h) among states, or false.
func (t *flowTable) find(states *stateStore, k *flowKey, h uint64) (uint32, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(h); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if (s^h)>>32 == 0 {
			id := uint32(s) - 1
			if states.at(id).key == *k {
				return id, true
			}
		}
	}
}

// insert adds id under hash h; the key must not be in the table.
func (t *flowTable) insert(h uint64, id uint32) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	t.place(h&^0xFFFFFFFF | uint64(id+1))
	t.n++
}

func (t *flowTable) place(slot uint64) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(slot)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = slot
}

func (t *flowTable) grow() {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	for _, s := range old {
		if s != 0 {
			t.place(s)
		}
	}
}

// remove deletes id (hash h), shifting back the entries after it that probed past its slot.
func (t *flowTable) remove(h uint64, id uint32) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(h)
	for uint32(t.slots[i]) != id+1 {
		if t.slots[i] == 0 {
			return
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		// The entry at j may move to the hole at i if its home is not in (i, j] (cyclically).
		if k := t.home(t.slots[j]); (j-k)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
	t.n--
}
