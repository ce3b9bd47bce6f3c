package flow

import "math/big"

// Side names one end of a two-ended exchange: A is the sender of the deciding frame (or the flow's
// current source), B the other end.
type Side uint8

// The two sides of R-DIR.
const (
	SideA Side = iota
	SideB
)

// The port bounds of R-DIR.
const (
	dirEphemeral = 49151 // above it, a port is ephemeral (R-DIR-L2, R-DIR-L3)
	dirWellKnown = 1024  // below it, a port is well known (R-DIR-L4)
	dirSystem    = 1023  // above it, a port is not a system port (R-DIR-N2)
)

// DirPort is a port number as R-DIR compares it. The capture path's ports are small ([IntPort]); the
// NetFlow reader's are Python integers parsed from text, of any size ([BigPort]).
type DirPort struct {
	n   int64
	big *big.Int // the value when it does not fit n; nil otherwise
}

// IntPort returns the DirPort of n.
func IntPort(n int) DirPort { return DirPort{n: int64(n)} }

// BigPort returns the DirPort of v, which it keeps (v must not change afterwards).
func BigPort(v *big.Int) DirPort {
	if v.IsInt64() {
		return DirPort{n: v.Int64()}
	}
	return DirPort{big: v}
}

// above reports p > bound, for one of R-DIR's bounds.
func (p DirPort) above(bound int64) bool {
	if p.big != nil { // beyond int64: its sign decides
		return p.big.Sign() > 0
	}
	return p.n > bound
}

// below reports p < bound, for one of R-DIR's bounds.
func (p DirPort) below(bound int64) bool {
	if p.big != nil {
		return p.big.Sign() < 0
	}
	return p.n < bound
}

// greater reports p > q.
func (p DirPort) greater(q DirPort) bool {
	if p.big == nil && q.big == nil {
		return p.n > q.n
	}
	return greaterBig(p, q)
}

// greaterBig is greater where a port does not fit int64.
func greaterBig(p, q DirPort) bool { return p.bigInt().Cmp(q.bigInt()) > 0 }

func (p DirPort) bigInt() *big.Int {
	if p.big != nil {
		return p.big
	}
	return big.NewInt(p.n)
}

// DirEnds is what R-DIR reads about a flow's two ends. An input that could not be made (the NetFlow
// reader's text that is not an IP address or not an integer) carries its error in the matching Err field
// instead: [DirectionOf] fails with it when, and only when, the reference's evaluation reads that input,
// so a reader fails exactly where the reference aborts.
type DirEnds struct {
	LocalA bool // whether A is local (R-LOC-1)
	ICMP   bool // whether the flow is ICMP; its ports are then never read
	LocalB bool // whether B is local
	PortA  DirPort
	PortB  DirPort

	LocalBErr, PortAErr, PortBErr error
}

// DirectionOf is the one implementation of the direction heuristic R-DIR: it returns which side is the
// flow's source. The rows are tried in the spec's order (L1 … L5 when A is local, N1 … N3 when not) and
// each reads its inputs in the reference's order and only when the reference gets there: ports are never
// read for an ICMP flow, whether B is local never when A is. It fails with the Err of the first input it
// reads that has one.
func DirectionOf(e *DirEnds) (Side, error) {
	if e.LocalA {
		return directionLocal(e)
	}
	if e.LocalBErr != nil { // every N row reads local(B) first
		return SideA, e.LocalBErr
	}
	if e.ICMP { // R-DIR-N1
		if e.LocalB {
			return SideB, nil
		}
		return SideA, nil
	}
	if !e.LocalB { // R-DIR-N2: not local(B) and portB > 1023 and portA > 1023
		if e.PortBErr != nil {
			return SideA, e.PortBErr
		}
		if e.PortB.above(dirSystem) {
			if e.PortAErr != nil {
				return SideA, e.PortAErr
			}
			if e.PortA.above(dirSystem) {
				return SideA, nil
			}
		}
	}
	// R-DIR-N3: B if portB > portA, else A; portB is read first.
	if e.PortBErr != nil {
		return SideA, e.PortBErr
	}
	if e.PortAErr != nil {
		return SideA, e.PortAErr
	}
	if e.PortB.greater(e.PortA) {
		return SideB, nil
	}
	return SideA, nil
}

// directionLocal is R-DIR-L1 … R-DIR-L5, the rows for a local A.
func directionLocal(e *DirEnds) (Side, error) {
	if e.ICMP { // R-DIR-L1
		return SideA, nil
	}
	if e.PortAErr != nil {
		return SideA, e.PortAErr
	}
	if e.PortA.above(dirEphemeral) { // R-DIR-L2
		return SideA, nil
	}
	if e.PortBErr != nil {
		return SideA, e.PortBErr
	}
	if e.PortB.above(dirEphemeral) { // R-DIR-L3
		return SideB, nil
	}
	if e.PortB.below(dirWellKnown) { // R-DIR-L4
		return SideA, nil
	}
	if e.PortB.greater(e.PortA) { // R-DIR-L5
		return SideB, nil
	}
	return SideA, nil
}

// Direction applies R-DIR to known values (the capture path) and returns which side is the flow's source.
// Ports are ignored when icmp is true.
func Direction(localA, localB, icmp bool, portA, portB int) Side {
	side, _ := DirectionOf(&DirEnds{LocalA: localA, ICMP: icmp, LocalB: localB,
		PortA: IntPort(portA), PortB: IntPort(portB)})
	return side
}
