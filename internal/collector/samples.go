package collector

import (
	"fmt"
	"path/filepath"
	"strconv"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/atomicfile"
	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// SampleName returns a sample's id and file name: <host>_<window start>[_r<revision>].bf (DESIGN.md).
func SampleName(host string, windowStart int64, revision int) (id, fileName string) {
	id = host + "_" + strconv.FormatInt(windowStart, 10)
	if revision > 1 {
		id += "_r" + strconv.Itoa(revision)
	}
	return id, id + ".bf"
}

// BuildSample turns a window's flows, in arrival order, into the sample's flow list as `flowctl convert`
// orders and numbers them: trafficDate is the window's first frame time (or the earliest flow start),
// relativeStart counts from it, flows are sorted stably by relativeStart and TCP/UDP flows numbered
// (R-OUT-3, R-FLOW-2, R-ORD-1, R-ID-1). Names come from the sensor.
func BuildSample(flows []*flowfleetv1.Flow, firstFrameTime float64) flow.Sample {
	s := flow.Sample{Start: flow.NoStart, Flows: make([]flow.Flow, 0, len(flows))}
	for _, p := range flows {
		f := flowpb.FromProto(p)
		if f.First < s.Start {
			s.Start = f.First
		}
		s.Flows = append(s.Flows, f)
	}
	if firstFrameTime > 0 && firstFrameTime <= s.Start {
		s.Start = firstFrameTime
	}
	flow.Finalize(&s, true)
	flow.FixZeroPackets(s.Flows)
	return s
}

// buildSample is the store's CloseWindow callback: it decodes the window's batches, writes the .bf file
// atomically and returns the sample to record.
func (c *Collector) buildSample(w store.WindowContent) (store.NewSample, error) {
	var all []*flowfleetv1.Flow
	for _, b := range w.Batches {
		flows, err := flowpb.Decode(b)
		if err != nil {
			return store.NewSample{}, err
		}
		all = append(all, flows...)
	}
	s := BuildSample(all, w.FirstFrameTime)
	id, name := SampleName(w.Host, w.WindowStart, w.Revision)
	content := bayseflow.Encode(s, name, "")
	if err := atomicfile.WriteFile(filepath.Join(c.SampleDir(), name), content, 0o644); err != nil {
		return store.NewSample{}, fmt.Errorf("write %s: %w", name, err)
	}
	ordered := make([]*flowfleetv1.Flow, len(s.Flows))
	for i := range s.Flows {
		ordered[i] = flowpb.ToProto(&s.Flows[i], w.WindowStart)
	}
	enc, err := flowpb.Encode(ordered)
	if err != nil {
		return store.NewSample{}, err
	}
	return store.NewSample{ID: id, FileName: name, FlowCount: len(s.Flows), Bytes: int64(len(content)),
		State: store.StateWritten, Content: content, Flows: enc}, nil
}
