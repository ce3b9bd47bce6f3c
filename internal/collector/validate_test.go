package collector

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"buf.build/go/protovalidate"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

var (
	tAddrs = []string{"10.0.0.5", "192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "::", "::ffff:1.2.3.4",
		"fe80::1%eth0", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "", " 1.2.3.4",
		"1.2.3.4 ", "example.com", "::ffff:0102:0304", "1:2:3:4:5:6:7:8", "1::2::3", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
		"0000:0000:0000:0000:0000:0000:0000:0001", "1.2.3.4/24", "[::1]", "١.٢.٣.٤"}
	tPorts = []string{"", "0", "443", "65535", "99999", "123456", "-1", "4 3", "a", "٤٤٣", "00443", "1e3"}
	tNames = []string{"example.com", "", "x", strings.Repeat("a", 1024), strings.Repeat("a", 1025), "héllo", strings.Repeat("é", 600),
		"10.0.0.1"}
	tTimes = []float64{0, 1, 1.7e9, 1.7e9 + 0.5, -1, -0.0, math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64}
)

// randomFlow draws each field from values the rules accept most of the time, and from tricky ones
// otherwise, so that both outcomes are common.
func randomFlow(r *rand.Rand) *flowfleetv1.Flow {
	pick := func(good, tricky []string) string {
		if r.IntN(10) < 8 {
			return good[r.IntN(len(good))]
		}
		return tricky[r.IntN(len(tricky))]
	}
	num := func(lo, hi int) int {
		if r.IntN(10) < 9 {
			return lo + r.IntN(hi-lo+1)
		}
		return lo - 1 - r.IntN(2) + (hi-lo+3)*r.IntN(2)
	}
	tm := func() float64 {
		if r.IntN(10) < 8 {
			return 1.7e9 + r.Float64()*300
		}
		return tTimes[r.IntN(len(tTimes))]
	}
	f := &flowfleetv1.Flow{
		SrcAddr: pick(goodAddrs, tAddrs), SrcPort: pick(goodPorts, tPorts), DstAddr: pick(goodAddrs, tAddrs),
		DstPort: pick(goodPorts, tPorts), DstName: pick(goodNames, tNames),
		NameSource: flowfleetv1.NameSource(num(1, 4)), Protocol: flowfleetv1.Protocol(num(1, 4)),
		SrcPkts: int64(num(0, 5)), SrcBytes: r.Int64N(5) - 1, DstPkts: int64(num(0, 5)), DstBytes: r.Int64N(5) - 1,
		FirstSeen: tm(), LastSeen: tm(), WindowStart: int64(num(0, 2)),
	}
	if f.Protocol == flowfleetv1.Protocol_PROTOCOL_ICMP && r.IntN(2) == 0 {
		f.SrcPort, f.DstPort = "", ""
	}
	return f
}

var (
	goodAddrs = []string{"10.0.0.5", "192.0.2.1", "2001:db8::1", "::1", "::ffff:1.2.3.4", "fe80::1"}
	goodPorts = []string{"", "0", "443", "65535", "53"}
	goodNames = []string{"example.com", "x", "10.0.0.1", "héllo"}
)

func num3(r *rand.Rand) int {
	if r.IntN(20) == 0 {
		return 0
	}
	return 1 + r.IntN(1000)
}

// checkAgrees fails when the shortcut accepts a batch the proto's rules reject.
func checkAgrees(t testing.TB, v protovalidate.Validator, b *flowfleetv1.FlowBatch) (fast, rules bool) {
	t.Helper()
	fast = okBatch(b)
	err := v.Validate(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: b}})
	if fast && err != nil {
		t.Fatalf("the shortcut accepts a batch the rules reject (%v):\n%v", err, b)
	}
	return fast, err == nil
}

func TestFastValidatorIsASubsetOfTheRules(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var fastOK, rulesOK int
	for i := 0; i < 20000; i++ {
		n := 1 + r.IntN(2)
		b := &flowfleetv1.FlowBatch{Seq: uint64(num3(r)), Flows: make([]*flowfleetv1.Flow, n)}
		for j := range b.Flows {
			b.Flows[j] = randomFlow(r)
		}
		fast, rules := checkAgrees(t, v, b)
		if fast {
			fastOK++
		}
		if rules {
			rulesOK++
		}
	}
	if fastOK == 0 || rulesOK == 0 {
		t.Fatalf("degenerate sample: %d accepted by the shortcut, %d by the rules", fastOK, rulesOK)
	}
	t.Logf("of 20000 random batches the rules accept %d, the shortcut %d", rulesOK, fastOK)
	// What sensors send takes the shortcut, or the shortcut would be pointless.
	b := &flowfleetv1.FlowBatch{Seq: 1, Flows: testFlows(1_700_000_040, 50, 0)}
	icmp := testFlows(1_700_000_040, 1, 0)[0]
	icmp.Protocol, icmp.SrcPort, icmp.DstPort, icmp.SrcAddr, icmp.DstAddr = flowfleetv1.Protocol_PROTOCOL_ICMP, "", "", "2001:db8::5", "2001:db8::1"
	b.Flows = append(b.Flows, icmp)
	if fast, rules := checkAgrees(t, v, b); !fast || !rules {
		t.Fatalf("a sensor's batch: shortcut %v, rules %v; want both to accept", fast, rules)
	}
	// And the validator as the server uses it still rejects through the rules.
	bad := &flowfleetv1.FlowBatch{Seq: 1, Flows: testFlows(1_700_000_040, 1, 0)}
	bad.Flows[0].SrcAddr = "not an address"
	if err := (fastValidator{v}).Validate(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: bad}}); err == nil ||
		!strings.Contains(err.Error(), "src_addr") {
		t.Fatalf("invalid flow: %v, want the rules' error naming src_addr", err)
	}
}

func FuzzFastValidator(f *testing.F) {
	v, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("10.0.0.5", "40000", "93.184.216.34", "443", "example.com", int32(2), int32(1), int64(3), 1.7e9, 1.7e9+1)
	f.Add("::ffff:1.2.3.4", "", "2001:db8::1", "", "x", int32(1), int32(3), int64(0), 0.0, 0.0)
	f.Fuzz(func(t *testing.T, src, sport, dst, dport, name string, ns, proto int32, pkts int64, first, last float64) {
		fl := &flowfleetv1.Flow{SrcAddr: src, SrcPort: sport, DstAddr: dst, DstPort: dport, DstName: name,
			NameSource: flowfleetv1.NameSource(ns), Protocol: flowfleetv1.Protocol(proto), SrcPkts: pkts, DstPkts: pkts,
			FirstSeen: first, LastSeen: last}
		checkAgrees(t, v, &flowfleetv1.FlowBatch{Seq: 1, Flows: []*flowfleetv1.Flow{fl}})
	})
}
