package closer

import (
	"bytes"
	"strconv"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// MaxFileNameBytes bounds a sample's file name. File systems allow 255 bytes, and the atomic write's
// temporary file adds a dot, ".tmp" and ten digits to the name; a host name may be 253 characters.
const MaxFileNameBytes = 200

// SampleName returns a sample's id and file name: <host>_<window start>[_r<revision>], and the id with
// ".bf" (DESIGN.md). The id always holds the full host. The file name is bounded (MaxFileNameBytes):
// when the id makes it longer, the host part becomes the host's first 120 characters, "~" and 16 hex
// digits of the host's SHA-256, so the name stays unique per host and still ends in
// _<window start>[_r<revision>].bf (retention reads the window start from it). "~" is not a host name
// character, so a shortened name never equals a full one. The sample's host field, the store and the
// .bf's fileName keep the full host and the file name as written (docs/limits.md).
func SampleName(host string, windowStart int64, revision int) (id, fileName string) {
	suffix := "_" + strconv.FormatInt(windowStart, 10)
	if revision > 1 {
		suffix += "_r" + strconv.Itoa(revision)
	}
	id = host + suffix
	if len(id)+len(".bf") <= MaxFileNameBytes {
		return id, id + ".bf"
	}
	return id, auth.ShortName(host) + suffix + ".bf"
}

// BuildSample turns a window's flows, in arrival order, into the sample's flow list as `flowctl convert`
// orders and numbers them: trafficDate is the window's first frame time (or the earliest flow start),
// relativeStart counts from it, flows are sorted stably by relativeStart and TCP/UDP flows numbered
// (R-OUT-3, R-FLOW-2, R-ORD-1, R-ID-1). Names come from the sensor.
func BuildSample(flows []*flowfleetv1.Flow, firstFrameTime float64) flow.Sample {
	s := flow.Sample{Start: flow.NoStart, Flows: make([]flow.Flow, 0, len(flows))}
	for _, p := range flows {
		s.Flows = append(s.Flows, flowpb.FromProto(p))
	}
	finishSample(&s, firstFrameTime)
	return s
}

// finishSample sets the sample's start and orders and numbers its flows (BuildSample).
func finishSample(s *flow.Sample, firstFrameTime float64) {
	for i := range s.Flows {
		if s.Flows[i].First < s.Start {
			s.Start = s.Flows[i].First
		}
	}
	if firstFrameTime > 0 && firstFrameTime <= s.Start {
		s.Start = firstFrameTime
	}
	flow.Finalize(s, true)
	flow.FixZeroPackets(s.Flows)
}

// build is the heart of the store's CloseWindow callback: it decodes the window's batches, orders and
// finishes the flows, encodes the .bf content and the flow chunks, and returns the sample to record
// (state closed: its file is written after the commit, Closer.writeFile). It writes no file, so SQLite's
// optimistic close may call it again at no cost but the CPU.
//
// What it holds at once is about three times the window's encoded flows (the engine's flows with their
// names, the .bf content and the encoded chunks), and the window is bounded (Config.MaxWindowBytes):
// each batch is decoded alone and let go once its flows are converted (w.Batches[i] = nil), no list of
// API messages for the whole window is built, the ordered flows are encoded a chunk of
// store.FlowChunkFlows at a time, and the content's buffer is sized once. Before, the whole window
// lived at once as stored batches, decoded messages, engine flows, ordered messages, one encoded copy
// and a doubling content buffer: closing 100,000 flows with 1 KiB names peaked at 1,282 MiB resident,
// 830–860 MiB now (bench/README.md).
func build(w store.WindowContent) (store.NewSample, error) {
	s := flow.Sample{Start: flow.NoStart}
	for i, b := range w.Batches {
		flows, err := flowpb.Decode(b)
		if err != nil {
			return store.NewSample{}, err
		}
		w.Batches[i] = nil // the caller's snapshot: its bytes can go now
		if s.Flows == nil {
			s.Flows = make([]flow.Flow, 0, len(flows))
		}
		for _, p := range flows {
			s.Flows = append(s.Flows, flowpb.FromProto(p))
		}
	}
	finishSample(&s, w.FirstFrameTime)
	id, name := SampleName(w.Host, w.WindowStart, w.Revision)
	content := encodeContent(s, name)
	chunks := make([][]byte, 0, (len(s.Flows)+store.FlowChunkFlows-1)/store.FlowChunkFlows)
	ordered := make([]*flowfleetv1.Flow, 0, min(len(s.Flows), store.FlowChunkFlows))
	for from := 0; from < len(s.Flows); from += store.FlowChunkFlows {
		ordered = ordered[:0]
		for i := from; i < min(from+store.FlowChunkFlows, len(s.Flows)); i++ {
			ordered = append(ordered, flowpb.ToProto(&s.Flows[i], w.WindowStart))
		}
		enc, err := flowpb.Encode(ordered)
		if err != nil {
			return store.NewSample{}, err
		}
		chunks = append(chunks, enc)
	}
	return store.NewSample{ID: id, FileName: name, FlowCount: len(s.Flows), Bytes: int64(len(content)),
		State: store.StateClosed, Content: content, FlowChunks: chunks}, nil
}

// encodeContent encodes the sample's .bf into a buffer sized for it up front: bayseflow.Encode's buffer
// grows by doubling from an estimate of 200 bytes a flow, which with long names allocated about three
// times the file on the way (and left up to twice the file in the final buffer).
func encodeContent(s flow.Sample, name string) []byte {
	size := 512 + len(name)
	for i := range s.Flows {
		f := &s.Flows[i]
		// A flow's JSON is about 230 bytes besides its strings (pkg/formats/bayseflow).
		size += 256 + len(f.Name) + len(f.SrcAddr) + len(f.DstAddr) + len(f.SrcPort) + len(f.DstPort) + len(f.Identifier)
	}
	var buf bytes.Buffer
	buf.Grow(size)
	_ = bayseflow.EncodeTo(&buf, s, name, "") // a bytes.Buffer does not fail
	return buf.Bytes()
}
