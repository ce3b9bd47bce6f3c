package flow

// Protocol is a flow's protocolInformation label (R-OUT-5).
type Protocol string

// The protocol labels a flow can carry.
const (
	ProtoTCP   Protocol = "TCP"
	ProtoUDP   Protocol = "UDP"
	ProtoICMP  Protocol = "ICMP"
	ProtoOther Protocol = ""
)

// protoCode is a Protocol as a number, for the engine's state, which holds no pointers.
type protoCode uint8

const (
	codeOther protoCode = iota
	codeTCP
	codeUDP
	codeICMP
)

var protoLabels = [4]Protocol{ProtoOther, ProtoTCP, ProtoUDP, ProtoICMP}

func (c protoCode) label() Protocol { return protoLabels[c&3] }

// NameSource says where a flow's destination name came from (R-NAME-2).
type NameSource string

// The name sources, from the strongest knowledge to none.
const (
	SourceSession  NameSource = "session"
	SourcePassive  NameSource = "passive"
	SourceCache    NameSource = "cache"
	SourceOriginal NameSource = "original"
)

// NoStart is the start time S of a conversion that learned no time (R-OUT-3).
const NoStart = 99999999999.0

// Flow is the common flow record of every input kind (R-FLOW-1).
type Flow struct {
	SrcAddr, SrcPort string // SrcPort is "" for ICMP
	DstAddr, DstPort string // DstPort is "" for ICMP
	Protocol         Protocol
	Identifier       string
	SrcPkts          int64
	SrcBytes         int64
	DstPkts          int64
	DstBytes         int64
	First            float64 // start time, seconds since the epoch
	Last             float64 // latest contribution time; starts at 0 (R-FLOW-3)

	// Name is the destination name; empty until naming, or set from the input (Interflow dstip_host,
	// TLS SNI, HTTP Host), which makes it a session name (R-NAME-2 step 1).
	Name       string
	NameSource NameSource

	RelativeStart float64 // fix6(First − S), set by Finalize
	Duration      float64 // fix6(Last − First), set by Finalize
	// DurationUnknown marks a duration the reference writes as the integer -1 (R-NF-8).
	DurationUnknown bool
}

// Flip swaps the source and destination sides (R-FLOW-4).
func (f *Flow) Flip() {
	f.SrcAddr, f.DstAddr = f.DstAddr, f.SrcAddr
	f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
	f.SrcPkts, f.DstPkts = f.DstPkts, f.SrcPkts
	f.SrcBytes, f.DstBytes = f.DstBytes, f.SrcBytes
}

// Key returns the flow's key (R-FLOW-1): "<src>:<port>-<dst>:<port>", or the ICMP form.
func (f *Flow) Key() string {
	return Key(f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort, f.Protocol == ProtoICMP)
}

// Key builds a flow key from its parts (R-FLOW-1).
func Key(src, srcPort, dst, dstPort string, icmp bool) string {
	if icmp {
		return src + ":ICMP-" + dst + ":ICMP"
	}
	return src + ":" + srcPort + "-" + dst + ":" + dstPort
}

// Sample is the result of one conversion or one window: the start time S and the finished flows in the
// order they are written.
type Sample struct {
	Start float64 // S, the trafficDate (R-OUT-3); NoStart when nothing was learned
	Flows []Flow
}
