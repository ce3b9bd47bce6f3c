// Package flowpb converts flows between the flow engine's record (pkg/flow) and the API's message
// (flowfleet.v1.Flow), and encodes lists of flows for storage.
package flowpb

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// MaxNameBytes is the longest dst_name the API accepts; a longer name is replaced by the address.
const MaxNameBytes = 1024

// MaxBatchFlows is the most flows one FlowBatch may carry (the proto's flows max_items rule).
const MaxBatchFlows = 10000

// ToProto converts an engine flow of the window starting at windowStart. dst_name is the flow's name, or
// its destination address when it has none (or one longer than MaxNameBytes), with source ORIGINAL.
func ToProto(f *flow.Flow, windowStart int64) *flowfleetv1.Flow {
	name, src := f.Name, nameSourceToProto(f.NameSource)
	if name == "" || len(name) > MaxNameBytes {
		name, src = f.DstAddr, flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL
	}
	return &flowfleetv1.Flow{
		SrcAddr: f.SrcAddr, SrcPort: f.SrcPort, DstAddr: f.DstAddr, DstPort: f.DstPort,
		DstName: name, NameSource: src, Protocol: protocolToProto(f.Protocol),
		SrcPkts: f.SrcPkts, SrcBytes: f.SrcBytes, DstPkts: f.DstPkts, DstBytes: f.DstBytes,
		FirstSeen: f.First, LastSeen: f.Last, WindowStart: windowStart,
	}
}

// FromProto converts an API flow to an engine flow (RelativeStart, Duration and Identifier unset).
func FromProto(p *flowfleetv1.Flow) flow.Flow {
	return flow.Flow{
		SrcAddr: p.GetSrcAddr(), SrcPort: p.GetSrcPort(), DstAddr: p.GetDstAddr(), DstPort: p.GetDstPort(),
		Protocol: protocolFromProto(p.GetProtocol()), SrcPkts: p.GetSrcPkts(), SrcBytes: p.GetSrcBytes(),
		DstPkts: p.GetDstPkts(), DstBytes: p.GetDstBytes(), First: p.GetFirstSeen(), Last: p.GetLastSeen(),
		Name: p.GetDstName(), NameSource: nameSourceFromProto(p.GetNameSource()),
	}
}

// Encode stores a list of API flows as one FlowBatch message.
func Encode(flows []*flowfleetv1.Flow) ([]byte, error) {
	b, err := proto.Marshal(&flowfleetv1.FlowBatch{Flows: flows})
	if err != nil {
		return nil, fmt.Errorf("encode flows: %w", err)
	}
	return b, nil
}

// EncodeEnds is Encode that also returns where each flow's encoding ends: b[:ends[i]] is the encoding of
// flows[:i+1] (a FlowBatch's flows are its repeated field 2, one record after another), so a list can
// be cut after any flow without encoding it again.
func EncodeEnds(flows []*flowfleetv1.Flow) (b []byte, ends []int, err error) {
	ends = make([]int, len(flows))
	sizes := make([]int, len(flows))
	n := 0
	for i, f := range flows {
		sizes[i] = proto.Size(f)
		n += protowire.SizeTag(flowsField) + protowire.SizeBytes(sizes[i])
	}
	b = make([]byte, 0, n)
	opts := proto.MarshalOptions{UseCachedSize: true} // the sizes were just computed
	for i, f := range flows {
		b = protowire.AppendTag(b, flowsField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizes[i]))
		if b, err = opts.MarshalAppend(b, f); err != nil {
			return nil, nil, fmt.Errorf("encode flows: %w", err)
		}
		ends[i] = len(b)
	}
	return b, ends, nil
}

// flowsField is the field number of FlowBatch.flows.
const flowsField = 2

// Decode reads a list stored by Encode.
func Decode(b []byte) ([]*flowfleetv1.Flow, error) {
	var m flowfleetv1.FlowBatch
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode flows: %w", err)
	}
	return m.GetFlows(), nil
}

func nameSourceToProto(s flow.NameSource) flowfleetv1.NameSource {
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

func nameSourceFromProto(s flowfleetv1.NameSource) flow.NameSource {
	switch s {
	case flowfleetv1.NameSource_NAME_SOURCE_SESSION:
		return flow.SourceSession
	case flowfleetv1.NameSource_NAME_SOURCE_PASSIVE:
		return flow.SourcePassive
	case flowfleetv1.NameSource_NAME_SOURCE_CACHE:
		return flow.SourceCache
	}
	return flow.SourceOriginal
}

func protocolToProto(p flow.Protocol) flowfleetv1.Protocol {
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

func protocolFromProto(p flowfleetv1.Protocol) flow.Protocol {
	switch p {
	case flowfleetv1.Protocol_PROTOCOL_TCP:
		return flow.ProtoTCP
	case flowfleetv1.Protocol_PROTOCOL_UDP:
		return flow.ProtoUDP
	case flowfleetv1.Protocol_PROTOCOL_ICMP:
		return flow.ProtoICMP
	}
	return flow.ProtoOther
}
