package flow

import "cmp"

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

// DirPort is a port number as R-DIR compares it: with another port of its kind and with the rules'
// bounds. The capture path's ports are ints ([IntPort]); the NetFlow reader's are Python's unbounded
// integers parsed from text.
type DirPort[P any] interface {
	// Cmp returns -1, 0 or +1 as the port is below, equal to or above q.
	Cmp(q P) int
	// CmpBound is Cmp against one of R-DIR's bounds (1023, 1024, 49151).
	CmpBound(bound int) int
}

// DirEnds is what R-DIR asks about a flow's two ends beyond whether A is local and whether the flow is
// ICMP: whether B is local, and the two ports. [DirectionOf] asks for each only when the reference's
// evaluation reaches it and in the reference's order, so an implementation that parses text (the NetFlow
// reader) fails exactly where the reference aborts; an error ends the evaluation.
type DirEnds[P DirPort[P]] interface {
	LocalB() (bool, error)
	PortA() (P, error)
	PortB() (P, error)
}

// DirectionOf is the one implementation of the direction heuristic R-DIR: it returns which side is the
// flow's source. The rows are tried in the spec's order (L1 … L5 when A is local, N1 … N3 when not) and
// each reads only what the reference reads when it gets there: ports are never read for an ICMP flow,
// whether B is local is never read when A is.
func DirectionOf[P DirPort[P], E DirEnds[P]](localA, icmp bool, e E) (Side, error) {
	if localA {
		return directionLocal[P](icmp, e)
	}
	if icmp { // R-DIR-N1
		lb, err := e.LocalB()
		if err != nil || !lb {
			return SideA, err
		}
		return SideB, nil
	}
	lb, err := e.LocalB()
	if err != nil {
		return SideA, err
	}
	if !lb { // R-DIR-N2: not local(B) and portB > 1023 and portA > 1023
		pb, err := e.PortB()
		if err != nil {
			return SideA, err
		}
		if pb.CmpBound(dirSystem) > 0 {
			pa, err := e.PortA()
			if err != nil {
				return SideA, err
			}
			if pa.CmpBound(dirSystem) > 0 {
				return SideA, nil
			}
		}
	}
	return higherPortB[P](e) // R-DIR-N3
}

// directionLocal is R-DIR-L1 … R-DIR-L5, the rows for a local A.
func directionLocal[P DirPort[P], E DirEnds[P]](icmp bool, e E) (Side, error) {
	if icmp { // R-DIR-L1
		return SideA, nil
	}
	pa, err := e.PortA()
	if err != nil {
		return SideA, err
	}
	if pa.CmpBound(dirEphemeral) > 0 { // R-DIR-L2
		return SideA, nil
	}
	pb, err := e.PortB()
	if err != nil {
		return SideA, err
	}
	if pb.CmpBound(dirEphemeral) > 0 { // R-DIR-L3
		return SideB, nil
	}
	if pb.CmpBound(dirWellKnown) < 0 { // R-DIR-L4
		return SideA, nil
	}
	if pb.Cmp(pa) > 0 { // R-DIR-L5
		return SideB, nil
	}
	return SideA, nil
}

// higherPortB is R-DIR-N3: B if portB > portA, else A. Like the reference it reads portB first (again,
// when R-DIR-N2 read it).
func higherPortB[P DirPort[P], E DirEnds[P]](e E) (Side, error) {
	pb, err := e.PortB()
	if err != nil {
		return SideA, err
	}
	pa, err := e.PortA()
	if err != nil {
		return SideA, err
	}
	if pb.Cmp(pa) > 0 {
		return SideB, nil
	}
	return SideA, nil
}

// IntPort is a port that is already a number, as in the capture path.
type IntPort int

// Cmp implements DirPort.
func (p IntPort) Cmp(q IntPort) int { return cmp.Compare(p, q) }

// CmpBound implements DirPort.
func (p IntPort) CmpBound(bound int) int { return cmp.Compare(int(p), bound) }

// knownEnds is DirEnds for values known in advance; it never fails.
type knownEnds struct {
	localB       bool
	portA, portB IntPort
}

func (k knownEnds) LocalB() (bool, error)   { return k.localB, nil }
func (k knownEnds) PortA() (IntPort, error) { return k.portA, nil }
func (k knownEnds) PortB() (IntPort, error) { return k.portB, nil }

// Direction applies R-DIR to known values (the capture path) and returns which side is the flow's source.
// Ports are ignored when icmp is true.
func Direction(localA, localB, icmp bool, portA, portB int) Side {
	side, _ := DirectionOf[IntPort](localA, icmp, knownEnds{localB, IntPort(portA), IntPort(portB)})
	return side
}
