package window

import (
	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// MaxNameBytes is the longest dst_name the API accepts; a longer name is replaced by the address.
const MaxNameBytes = 1024

// ToProto converts an engine flow into the API's Flow, for the window starting at windowStart.
// dst_name is the flow's name, or its destination address when it has none (or one longer than
// MaxNameBytes), with name source ORIGINAL.
func ToProto(f *flow.Flow, windowStart int64) *flowfleetv1.Flow {
	name, src := f.Name, nameSource(f.NameSource)
	if name == "" || len(name) > MaxNameBytes {
		name, src = f.DstAddr, flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL
	}
	return &flowfleetv1.Flow{
		SrcAddr:     f.SrcAddr,
		SrcPort:     f.SrcPort,
		DstAddr:     f.DstAddr,
		DstPort:     f.DstPort,
		DstName:     name,
		NameSource:  src,
		Protocol:    protocol(f.Protocol),
		SrcPkts:     f.SrcPkts,
		SrcBytes:    f.SrcBytes,
		DstPkts:     f.DstPkts,
		DstBytes:    f.DstBytes,
		FirstSeen:   f.First,
		LastSeen:    f.Last,
		WindowStart: windowStart,
	}
}

func nameSource(s flow.NameSource) flowfleetv1.NameSource {
	switch s {
	case flow.SourceSession:
		return flowfleetv1.NameSource_NAME_SOURCE_SESSION
	case flow.SourcePassive:
		return flowfleetv1.NameSource_NAME_SOURCE_PASSIVE
	case flow.SourceCache:
		return flowfleetv1.NameSource_NAME_SOURCE_CACHE
	}
	return flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL
}

func protocol(p flow.Protocol) flowfleetv1.Protocol {
	switch p {
	case flow.ProtoTCP:
		return flowfleetv1.Protocol_PROTOCOL_TCP
	case flow.ProtoUDP:
		return flowfleetv1.Protocol_PROTOCOL_UDP
	case flow.ProtoICMP:
		return flowfleetv1.Protocol_PROTOCOL_ICMP
	}
	return flowfleetv1.Protocol_PROTOCOL_OTHER
}
