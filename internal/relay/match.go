package relay

import (
	"math"
	"strconv"
	"strings"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// The matching rule (docs/enrichment.md). NetworkSage's flow list names a flow with its own field names
// and sends numbers as strings; it gives no index into the uploaded file. A NetworkSage flow matches a
// flow of the sample's .bf when all of these agree:
//
//   - sourceData = src and destinationData = dst, byte for byte;
//   - sourcePackets, sourceBytes, destinationPackets, destinationBytes = srcPkts, srcBytes, dstPkts,
//     dstBytes as integers (a string "12", a number 12 and "12.0" are the same);
//   - relativeStart = relativeStart as numbers, to the microsecond.
//
// Flows with the same key are indistinguishable: the k-th NetworkSage flow with a key matches the k-th
// sample flow with that key, in file order. A NetworkSage flow with a key no sample flow has left (or
// a field that is not a number) matches nothing and is counted (remoteUnmatched); a sample flow no
// NetworkSage flow matched keeps no category. Nothing is guessed: no nearest match, no partial key.

// matchKey is a flow's key under the matching rule; ok is false when a number does not read.
func matchKey(src, dst, sp, sb, dp, db, rs string) (string, bool) {
	var b strings.Builder
	b.Grow(len(src) + len(dst) + 64)
	b.WriteString(src)
	b.WriteByte(0)
	b.WriteString(dst)
	for _, n := range []string{sp, sb, dp, db} {
		v, ok := integer(n)
		if !ok {
			return "", false
		}
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(v, 10))
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(int64(math.Round(f*1e6)), 10))
	return b.String(), true
}

// integer reads a count written as an integer, or as a number with no fractional part.
func integer(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// flowMatch is the outcome of matchFlows.
type flowMatch struct {
	labels          []store.FlowLabel // one per sample flow, in file order
	matched         int
	remoteUnmatched int
}

// matchFlows matches NetworkSage's flows to the sample's under the matching rule.
func matchFlows(ours []bayseflow.Row, theirs []Secflow) flowMatch {
	m := flowMatch{labels: make([]store.FlowLabel, len(ours))}
	waiting := make(map[string][]int, len(ours)) // key → indexes of our flows not yet matched, in order
	for i, r := range ours {
		k, ok := matchKey(r.Src, r.Dst, r.SrcPkts.String(), r.SrcBytes.String(), r.DstPkts.String(),
			r.DstBytes.String(), r.RelativeStart.String())
		if ok {
			waiting[k] = append(waiting[k], i)
		}
	}
	for _, f := range theirs {
		k, ok := matchKey(string(f.SourceData), string(f.DestinationData), string(f.SourcePackets),
			string(f.SourceBytes), string(f.DestinationPackets), string(f.DestinationBytes), string(f.RelativeStart))
		idx := waiting[k]
		if !ok || len(idx) == 0 {
			m.remoteUnmatched++
			continue
		}
		waiting[k] = idx[1:]
		m.labels[idx[0]] = store.FlowLabel{Category: string(f.FlowCategory), FlowID: string(f.FlowID),
			EventID: string(f.EventID), Destination: string(f.DestinationData)}
		m.matched++
	}
	return m
}
