package flow

// Side names one end of a two-ended exchange: A is the sender of the deciding frame (or the flow's
// current source), B the other end.
type Side uint8

// The two sides of R-DIR.
const (
	SideA Side = iota
	SideB
)

// Direction applies the direction heuristic R-DIR and returns which side is the flow's source.
// Ports are ignored when icmp is true.
func Direction(localA, localB, icmp bool, portA, portB int) Side {
	if localA {
		switch {
		case icmp: // R-DIR-L1
			return SideA
		case portA > 49151: // R-DIR-L2
			return SideA
		case portB > 49151: // R-DIR-L3
			return SideB
		case portB < 1024: // R-DIR-L4
			return SideA
		case portB > portA: // R-DIR-L5
			return SideB
		default:
			return SideA
		}
	}
	switch {
	case icmp: // R-DIR-N1
		if !localB {
			return SideA
		}
		return SideB
	case !localB && portB > 1023 && portA > 1023: // R-DIR-N2
		return SideA
	case portB > portA: // R-DIR-N3
		return SideB
	default:
		return SideA
	}
}
