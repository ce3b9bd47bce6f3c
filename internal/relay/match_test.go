package relay

import (
	"encoding/json"
	"testing"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

func row(src, dst string, sp, sb, dp, db, rs string) bayseflow.Row {
	return bayseflow.Row{Src: src, Dst: dst, SrcPkts: json.Number(sp), SrcBytes: json.Number(sb), DstPkts: json.Number(dp),
		DstBytes: json.Number(db), RelativeStart: json.Number(rs)}
}

func secflow(src, dst, sp, sb, dp, db, rs, cat string) Secflow {
	return Secflow{SourceData: Text(src), DestinationData: Text(dst), SourcePackets: Text(sp), SourceBytes: Text(sb),
		DestinationPackets: Text(dp), DestinationBytes: Text(db), RelativeStart: Text(rs), FlowCategory: Text(cat), FlowID: Text("id-" + cat)}
}

// The matching rule: exact source and destination, counts as integers whatever their spelling, start
// to the microsecond; equal keys pair up in order; nothing else matches.
func TestMatchFlows(t *testing.T) {
	ours := []bayseflow.Row{
		row("10.0.0.1:1", "a.example:443", "3", "100", "2", "50", "0.25"),
		row("10.0.0.1:2", "b.example:443", "1", "10", "0", "0", "1.5"),
		row("10.0.0.1:2", "b.example:443", "1", "10", "0", "0", "1.5"), // same key as the one before
		row("10.0.0.1:3", "c.example:80", "1", "10", "0", "0", "2"),
		row("10.0.0.1", "192.0.2.1", "1", "84", "1", "84", "3.0000001"), // ICMP
	}
	theirs := []Secflow{
		secflow("10.0.0.1", "192.0.2.1", "1.0", "84", "1", "84", "3.0000004", "icmp"), // within a microsecond
		secflow("10.0.0.1:2", "b.example:443", "1", "10", "0", "0", "1.500000", "b1"),
		secflow("10.0.0.1:1", "a.example:443", "3", "100", "2", "50", "0.25", "a"),
		secflow("10.0.0.1:2", "b.example:443", "1", "10", "0", "0", "1.5", "b2"),
		secflow("10.0.0.1:2", "b.example:443", "1", "10", "0", "0", "1.5", "b3"),   // a third: nothing left
		secflow("10.0.0.1:3", "c.example:80", "1", "11", "0", "0", "2", "c"),       // bytes differ
		secflow("10.0.0.1:3", "C.example:80", "1", "10", "0", "0", "2", "c"),       // case differs
		secflow("10.0.0.1:3", "c.example:80", "1", "10", "0", "0", "2.00001", "c"), // 10 µs later
		secflow("10.0.0.1:3", "c.example:80", "one", "10", "0", "0", "2", "c"),     // not a number
		secflow("10.0.0.1:3", "c.example:80", "1.5", "10", "0", "0", "2", "c"),     // not an integer
	}
	m := matchFlows(ours, theirs)
	want := []string{"a", "b1", "b2", "", "icmp"}
	for i, w := range want {
		if got := m.labels[i].Category; got != w {
			t.Errorf("flow %d: category %q, want %q", i, got, w)
		}
	}
	if m.labels[1] != (store.FlowLabel{Category: "b1", FlowID: "id-b1", Destination: "b.example:443"}) {
		t.Errorf("label %+v", m.labels[1])
	}
	if m.matched != 4 || m.remoteUnmatched != 6 {
		t.Errorf("matched %d, remote unmatched %d; want 4 and 6", m.matched, m.remoteUnmatched)
	}
}

// The matcher takes anything NetworkSage sends: it never panics, labels exactly the sample's flows, and
// its counts add up.
func FuzzMatchFlows(f *testing.F) {
	f.Add("10.0.0.1:1", "a.example:443", "3", "100", "0.25", "10.0.0.1:1", "a.example:443", "3", "100", "0.25")
	f.Add("10.0.0.1:1", "a.example:443", "3", "100", "0.25", "10.0.0.1:1", "a.example:443", "3.0", "1e2", "2.5e-1")
	f.Add("", "", "", "", "", "", "", "NaN", "-Inf", "1e400")
	f.Fuzz(func(t *testing.T, src, dst, pkts, bytes, rs, src2, dst2, pkts2, bytes2, rs2 string) {
		ours := []bayseflow.Row{row(src, dst, pkts, bytes, pkts, bytes, rs), row(src, dst, pkts, bytes, pkts, bytes, rs)}
		theirs := []Secflow{secflow(src2, dst2, pkts2, bytes2, pkts2, bytes2, rs2, "x"), secflow(src, dst, pkts, bytes, pkts, bytes, rs, "y")}
		m := matchFlows(ours, theirs)
		if len(m.labels) != len(ours) || m.matched > len(ours) || m.matched+m.remoteUnmatched != len(theirs) {
			t.Fatalf("labels %d, matched %d, remote unmatched %d", len(m.labels), m.matched, m.remoteUnmatched)
		}
		labelled := 0
		for _, l := range m.labels {
			if l.Category != "" {
				labelled++
			}
		}
		if labelled != m.matched {
			t.Fatalf("%d labelled, %d matched", labelled, m.matched)
		}
	})
}
