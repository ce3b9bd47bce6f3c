package netflow

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/internal/pytext"
)

const hdr = "ts,te,td,sa,da,sp,dp,pr,ipkt,ibyt,opkt,obyt\n"

// t0 is 2022-06-02 17:21:39 in America/New_York (EDT), as in testCase34 (R-NF-5).
const t0 = 1654204899.0

func read(t *testing.T, text string) flow.Sample {
	t.Helper()
	s, err := Read(strings.NewReader(text), "test.netflow", Options{Location: newYork(t)})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return s
}

func readErr(t *testing.T, text string) error {
	t.Helper()
	_, err := Read(strings.NewReader(text), "test.netflow", Options{Location: newYork(t)})
	if err == nil {
		t.Fatalf("Read succeeded, want an error")
	}
	if !strings.HasPrefix(err.Error(), "test.netflow") {
		t.Errorf("error %q does not name the file", err)
	}
	return err
}

func one(t *testing.T, s flow.Sample) flow.Flow {
	t.Helper()
	if len(s.Flows) != 1 {
		t.Fatalf("%d flows, want 1: %+v", len(s.Flows), s.Flows)
	}
	return s.Flows[0]
}

// R-NF-1: CSV text is accepted, JSON yields no records, anything else is refused.
func TestAccepting(t *testing.T) {
	t.Run("JSON gives no flows", func(t *testing.T) {
		for _, in := range []string{`{"ts": "2022-06-02 17:21:39"}`, "[1,2]\n[3]\n", "\n  {\n \"a\": [1,\n 2]}\n"} {
			s := read(t, in)
			if len(s.Flows) != 0 || s.Start != flow.NoStart {
				t.Errorf("%q: got %+v", in, s)
			}
		}
	})
	t.Run("invalid JSON", func(t *testing.T) {
		if err := readErr(t, "{\"a\": \n"); !strings.Contains(err.Error(), "neither CSV nor JSON") {
			t.Errorf("error %v", err)
		}
	})
	for name, in := range map[string]string{
		"empty":       "",
		"no commas":   "just some text\nmore text\n",
		"NUL byte":    hdr + "2022-06-02 17:21:39,\x00,1\n",
		"binary":      "\x89PNG\r\n\x1a\n\x00\x00",
		"invalid UTF": hdr + "2022-06-02 17:21:39,\xff\xfe\n",
	} {
		t.Run(name, func(t *testing.T) { readErr(t, in) })
	}
	t.Run("line numbers", func(t *testing.T) {
		err := readErr(t, hdr+"a,b\n\x01\n")
		if !strings.HasPrefix(err.Error(), "test.netflow:3:") {
			t.Errorf("error %q, want line 3", err)
		}
	})
	t.Run("line too long", func(t *testing.T) {
		err := readErr(t, hdr+strings.Repeat("x", MaxLine+1)+"\n")
		if !strings.Contains(err.Error(), "too long") || !strings.HasPrefix(err.Error(), "test.netflow:2:") {
			t.Errorf("error %q", err)
		}
	})
	t.Run("CRLF and lone CR end lines", func(t *testing.T) {
		in := strings.ReplaceAll(hdr, "\n", "\r\n") +
			"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\r" +
			"2022-06-02 17:21:40,x,0,10.0.0.1,8.8.8.8,50001,53,UDP,1,60,0,0"
		if s := read(t, in); len(s.Flows) != 2 {
			t.Errorf("%d flows, want 2", len(s.Flows))
		}
	})
}

// R-NF-2: header on line 0, later letter lines skipped, default header, item counts, empty items removed.
func TestLines(t *testing.T) {
	t.Run("summary lines skipped", func(t *testing.T) {
		s := read(t, hdr+"2022-06-02 17:21:39,x,0.000,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"+
			"Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n9,63099,138,10343,2,457\n")
		one(t, s)
	})
	t.Run("default header", func(t *testing.T) {
		// ts,td,sa,da,sp,dp,pr,flg,ipkt,ibyt,opkt,obyt,label; line 0 is data.
		s := read(t, "2022-06-02 17:21:39,1.5,10.0.0.1,8.8.8.8,50000,53,UDP,......,2,100,1,50,x\n")
		f := one(t, s)
		if f.SrcPkts != 2 || f.SrcBytes != 100-2*28 || f.DstPkts != 1 || f.DstBytes != 50-28 || f.Last != t0+1.5 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("wrong item count skipped", func(t *testing.T) {
		s := read(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0\n")
		if len(s.Flows) != 0 || s.Start != flow.NoStart {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("empty items shift the columns (quirk)", func(t *testing.T) {
		// ipkt is empty: the item is removed, so ipkt takes ibyt's value, ibyt opkt's, and so on; the
		// trailing extra item makes the count right again.
		s := read(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,,5,900,3,400\n")
		f := one(t, s)
		if f.SrcPkts != 5 || f.SrcBytes != 900-5*28 || f.DstPkts != 3 || f.DstBytes != 400-3*28 {
			t.Errorf("got %+v", f)
		}
		// Without the extra item the line is one short and skipped.
		if s := read(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,,5,900,3\n"); len(s.Flows) != 0 {
			t.Errorf("short line kept: %+v", s.Flows)
		}
	})
	t.Run("header and items are lower-cased and stripped", func(t *testing.T) {
		s := read(t, "TS , SA,DA,SP,DP,PR ,IPKT,IBYT\n2022-06-02 17:21:39 , FE80::1 ,FE80::2, 0 , 0 , ICMP6 ,  3,  300\n")
		f := one(t, s)
		if f.SrcAddr != "fe80::1" || f.DstAddr != "fe80::2" || f.Protocol != flow.ProtoICMP || f.SrcPkts != 3 ||
			f.SrcBytes != 300-3*44 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("a header line must start with a letter", func(t *testing.T) {
		// Line 0 starts with a space: it is data (with the wrong item count), and the default header
		// applies; the next line has 13 items in the default order.
		s := read(t, " ts,sa,da\n2022-06-02 17:21:39,1.5,10.0.0.1,8.8.8.8,50000,53,UDP,......,2,100,1,50,x\n")
		one(t, s)
	})
	t.Run("blank line 0 means the default header", func(t *testing.T) {
		s := read(t, "\nts,td,sa,da,sp,dp,pr,flg,ipkt,ibyt,opkt,obyt,label\n"+
			"2022-06-02 17:21:39,1.5,10.0.0.1,8.8.8.8,50000,53,UDP,......,2,100,1,50,x\n")
		one(t, s)
	})
}

// R-NF-3: column names map to roles; the rightmost column of a role wins; missing roles skip the record.
func TestColumns(t *testing.T) {
	s := read(t, "date first seen,duration,proto,sa,sp,da,dp,packets,ibyt,opkt,obyt,ts\n"+
		"2022-06-02 17:21:39,2.0,TCP,10.0.0.1,50000,8.8.8.8,443,3,500,2,200,2022-06-02 17:21:40\n")
	f := one(t, s)
	if f.First != t0+1 || f.Last != t0+3 || f.Protocol != flow.ProtoTCP || f.SrcPkts != 3 || f.SrcBytes != 500-3*40 {
		t.Errorf("got %+v", f)
	}
	// No destination port column: every record is skipped.
	s = read(t, "ts,sa,da,sp,pr\n2022-06-02 17:21:39,10.0.0.1,8.8.8.8,50000,TCP\n")
	if len(s.Flows) != 0 {
		t.Errorf("record without dp kept: %+v", s.Flows)
	}
}

// R-NF-4: 0.0.0.0 skipped, protocol labels, defaults.
func TestRecord(t *testing.T) {
	s := read(t, hdr+"2022-06-02 17:21:39,x,0,0.0.0.0,8.8.8.8,50000,53,UDP,1,60,0,0\n"+
		"2022-06-02 17:21:39,x,0,10.0.0.1,0.0.0.0,50000,53,UDP,1,60,0,0\n")
	if len(s.Flows) != 0 || s.Start != flow.NoStart {
		t.Errorf("0.0.0.0 records kept: %+v", s)
	}
	for proto, want := range map[string]flow.Protocol{"icmp": flow.ProtoICMP, "ICMP6": flow.ProtoICMP,
		"udp": flow.ProtoUDP, "Tcp": flow.ProtoTCP, "GRE": flow.ProtoOther, "47": flow.ProtoOther} {
		f := one(t, read(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,1234,2048,"+proto+",1,100,0,0\n"))
		if f.Protocol != want || f.Identifier != "" {
			t.Errorf("%s: got %+v", proto, f)
		}
		if icmp := want == flow.ProtoICMP; icmp != (f.SrcPort == "" && f.DstPort == "") {
			t.Errorf("%s: ports %q %q", proto, f.SrcPort, f.DstPort)
		}
	}
	// Defaults: no duration (last = start), no bytes (0, minus headers), no packets (0).
	f := one(t, read(t, "ts,sa,da,sp,dp,pr\n2022-06-02 17:21:39,10.0.0.1,8.8.8.8,50000,53,UDP\n"))
	if f.Last != t0 || f.SrcPkts != 0 || f.SrcBytes != 0 || f.DstPkts != 0 || f.DstBytes != 0 {
		t.Errorf("got %+v", f)
	}
}

// R-NF-5: local time in the configured zone, Python's lenient pattern and DST rules.
func TestStartTime(t *testing.T) {
	ny := newYork(t)
	for in, want := range map[string]float64{
		"2022-06-02 17:21:39":   1654204899, // testCase34
		"2008-06-21 08:06:06":   1214049966, // testCase35
		"2022-6-2 7:1:9":        1654167669, // one-digit fields
		"2022-06- 2 17:21:39":   1654204899, // %d allows a space before one digit
		"2022-06-02\t17:21:39":  1654204899,
		"2022-06-02  17:21:39":  1654204899,
		"2022-11-06 01:30:00":   1667712600, // ambiguous: first (EDT) offset
		"2022-11-06 00:59:59":   1667710799,
		"2022-11-06 02:00:00":   1667718000,
		"2022-03-13 02:30:00":   1647156600, // nonexistent: read with EST, lands at 03:30 EDT
		"2022-03-13 03:00:00":   1647154800,
		"2022-03-13 01:59:59":   1647154799,
		"1850-01-01 00:00:00":   -3786807838, // local mean time
		"9999-12-31 23:59:59":   253402318799,
		"2020-02-29 00:00:00":   1582952400,
		"2022-06-02 17:21:41.5": -1, // fractional seconds: skipped
		"2022-06-02 17:21:60":   -1,
		"2021-02-29 00:00:00":   -1,
		"0000-01-01 00:00:00":   -1,
		"0001-01-01 00:00:00":   -1, // Python: year 0 is out of range
		"2022-06-02T17:21:39":   -1,
		"22-06-02 17:21:39":     -1,
		"2022-13-02 17:21:39":   -1,
		"2022-06-02 24:00:00":   -1,
	} {
		got, ok := parseStart(in, ny)
		if want == -1 {
			if ok {
				t.Errorf("%q: parsed as %v, want a skipped record", in, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%q = %v, %v; want %v", in, got, ok, want)
		}
	}
	// A record with fractional seconds is skipped.
	s := read(t, hdr+"2022-06-02 17:21:41.123,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n")
	if len(s.Flows) != 0 {
		t.Errorf("fractional seconds kept: %+v", s.Flows)
	}
	// The zone is configurable; nil means time.Local.
	utc, err := Read(strings.NewReader(hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"),
		"x", Options{Location: time.UTC})
	if err != nil || utc.Start != 1654190499 {
		t.Errorf("UTC: %v %v", utc.Start, err)
	}
}

// R-NF-6: S is the smallest start of the kept records.
func TestStart(t *testing.T) {
	s := read(t, hdr+
		"2022-06-02 17:21:45,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"+
		"2022-06-02 17:21:39,x,0,10.0.0.2,8.8.8.8,50000,53,UDP,1,60,0,0\n"+
		"2022-06-02 17:21:30,x,0,0.0.0.0,8.8.8.8,50000,53,UDP,1,60,0,0\n")
	if s.Start != t0 {
		t.Errorf("S = %v, want %v", s.Start, t0)
	}
}

// R-NF-7: a record whose reverse key has a group joins it, flipped (testCase34's DNS exchange).
func TestPairing(t *testing.T) {
	s := read(t, hdr+
		"2022-06-02 17:21:39,x,0.000,192.168.12.164,9.9.9.9,62239,53,UDP,1,60,0,0\n"+
		"2022-06-02 17:21:39,x,0.000,9.9.9.9,192.168.12.164,53,62239,UDP,1,183,0,0\n")
	f := one(t, s)
	if f.SrcAddr != "192.168.12.164" || f.SrcPkts != 1 || f.SrcBytes != 32 || f.DstPkts != 1 || f.DstBytes != 155 {
		t.Errorf("got %+v", f)
	}
}

// R-NF-8: per-group sums, header deduction from the last record, duration, direction check.
func TestFlowPerGroup(t *testing.T) {
	t.Run("GRE header deduction goes negative (quirk)", func(t *testing.T) {
		f := one(t, read(t, "2022-06-02 17:21:39,0.000,1.1.1.1,2.2.2.2,0,0,GRE,........,2,10,0,0,x\n"))
		if f.SrcPkts != 2 || f.SrcBytes != -30 || f.Protocol != flow.ProtoOther || f.SrcPort != "0" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("testCase34 TCP", func(t *testing.T) {
		s := read(t, hdr+
			"2022-06-02 17:21:40,x,48.689,2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6,2600:1403:9c00:30::17c1:6a8e,58740,80,TCP,84,20610,0,0\n"+
			"2022-06-02 17:21:40,x,48.603,2600:1403:9c00:30::17c1:6a8e,2607:fb90:d726:7b19:5cc5:a122:d8ae:24e6,80,58740,TCP,47,40694,0,0\n")
		f := one(t, s)
		if f.SrcBytes != 15570 || f.DstBytes != 37874 || f.Last != t0+1+48.689 || f.SrcPort != "58740" {
			t.Errorf("got %+v", f)
		}
		flow.Finalize(&s, false)
		if s.Flows[0].Duration != 48.689 {
			t.Errorf("duration %v", s.Flows[0].Duration)
		}
	})
	t.Run("testCase34 ICMPv6 group", func(t *testing.T) {
		s := read(t, hdr+
			"2022-06-02 17:21:53,x,0,fe80::1c91:19cd:b275:8011,fe80::e7c:28ff:fef2:73aa,0,34560,ICMP6,1,72,0,0\n"+
			"2022-06-02 17:21:53,x,0,fe80::e7c:28ff:fef2:73aa,fe80::1c91:19cd:b275:8011,0,34816,ICMP6,1,64,0,0\n"+
			"2022-06-02 17:21:57,x,0,fe80::1c91:19cd:b275:8011,fe80::e7c:28ff:fef2:73aa,0,34816,ICMP6,1,64,0,0\n")
		f := one(t, s)
		if f.SrcPkts != 2 || f.SrcBytes != 48 || f.DstPkts != 1 || f.DstBytes != 20 || f.Last-f.First != 4 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("bytes that are not integers are skipped", func(t *testing.T) {
		f := one(t, read(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,2,-,1,1_000\n"))
		if f.SrcBytes != -2*28 || f.DstBytes != 1000-28 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("packets that are not integers abort", func(t *testing.T) {
		err := readErr(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,2.0,60,1,1\n")
		if !strings.HasPrefix(err.Error(), "test.netflow:2:") || !strings.Contains(err.Error(), "packet count") {
			t.Errorf("error %q", err)
		}
	})
	t.Run("duration that is not a number aborts", func(t *testing.T) {
		readErr(t, hdr+"2022-06-02 17:21:39,x,abc,10.0.0.1,8.8.8.8,50000,53,UDP,2,60,1,1\n")
	})
	t.Run("last uses the latest end, not the last record", func(t *testing.T) {
		f := one(t, read(t, hdr+
			"2022-06-02 17:21:39,x,10,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"+
			"2022-06-02 17:21:41,x,1,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"))
		if f.Last != t0+10 {
			t.Errorf("last %v", f.Last)
		}
	})
	t.Run("NaN durations are ignored like Python's max", func(t *testing.T) {
		f := one(t, read(t, hdr+"2022-06-02 17:21:39,x,nan,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"))
		if f.Last != 0 {
			t.Errorf("last %v, want 0 (the initial value)", f.Last)
		}
	})
	t.Run("source text not an IP: no deduction, duration -1, no direction check", func(t *testing.T) {
		s := read(t, hdr+"2022-06-02 17:21:39,x,5,host-a,8.8.8.8,53,60000,UDP,1,60,0,0\n")
		f := one(t, s)
		if !f.DurationUnknown || f.SrcBytes != 60 || f.SrcAddr != "host-a" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("IPv4 ICMP header is 28", func(t *testing.T) {
		f := one(t, read(t, hdr+"2008-06-21 08:06:06,x,0,1.1.1.1,2.2.2.2,0,2048,ICMP,1,124,0,0\n"+
			"2008-06-21 08:06:06,x,0,2.2.2.2,1.1.1.1,0,0,ICMP,1,124,0,0\n"))
		if f.SrcBytes != 96 || f.DstBytes != 96 || f.SrcAddr != "1.1.1.1" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("direction flips a flow", func(t *testing.T) {
		// 8.8.4.4:53 -> 10.0.0.1:50001: A not local, B local: R-DIR-N3, 50001 > 53, so B is the source.
		f := one(t, read(t, hdr+"2022-06-02 17:21:39,x,0,8.8.4.4,10.0.0.1,53,50001,UDP,1,100,2,300\n"))
		if f.SrcAddr != "10.0.0.1" || f.SrcPort != "50001" || f.DstAddr != "8.8.4.4" || f.SrcPkts != 2 ||
			f.SrcBytes != 300-2*28 || f.DstPkts != 1 || f.DstBytes != 100-28 {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("bad destination address aborts when the check needs it", func(t *testing.T) {
		err := readErr(t, hdr+"2022-06-02 17:21:39,x,0,8.8.4.4,nohost,53,50001,UDP,1,100,2,300\n")
		if !strings.Contains(err.Error(), "not an IP address") {
			t.Errorf("error %v", err)
		}
		// A local source with an ephemeral port decides before the destination is looked at (R-DIR-L2).
		f := one(t, read(t, hdr+"2022-06-02 17:21:39,x,0,10.0.0.1,nohost,50000,53,UDP,1,100,2,300\n"))
		if f.DstAddr != "nohost" {
			t.Errorf("got %+v", f)
		}
	})
	t.Run("zone suffix aborts at the direction check", func(t *testing.T) {
		readErr(t, hdr+"2022-06-02 17:21:39,x,0,fe80::1%eth0,fe80::2,50000,53,UDP,1,100,2,300\n")
	})
	t.Run("port that is not an integer aborts when compared", func(t *testing.T) {
		readErr(t, hdr+"2022-06-02 17:21:39,x,0,8.8.4.4,8.8.8.8,http,53,TCP,1,100,2,300\n")
	})
}

// R-DIR as evaluated by the NetFlow check agrees with flow.Direction on valid input.
func TestDirectionRows(t *testing.T) {
	addrs := []string{"10.0.0.1", "192.168.1.2", "8.8.8.8", "2607:fb90::1", "fe80::1", "224.0.0.251"}
	ports := []string{"0", "53", "80", "1023", "1024", "5353", "49151", "49152", "62239"}
	for _, a := range addrs {
		for _, b := range addrs {
			for _, icmp := range []bool{false, true} {
				for _, pa := range ports {
					for _, pb := range ports {
						f := flow.Flow{SrcAddr: a, DstAddr: b, SrcPort: pa, DstPort: pb, Protocol: flow.ProtoTCP}
						if icmp {
							f.SrcPort, f.DstPort, f.Protocol = "", "", flow.ProtoICMP
						}
						got, err := wrongDirection(&f)
						if err != nil {
							t.Fatal(err)
						}
						aa, _ := flow.ParseAddr(a)
						ba, _ := flow.ParseAddr(b)
						ia, ib := atoi(pa), atoi(pb)
						if icmp {
							ia, ib = 0, 0
						}
						want := flow.Direction(flow.IsLocal(aa), flow.IsLocal(ba), icmp, ia, ib) == flow.SideB
						if got != want {
							t.Errorf("%s:%s -> %s:%s icmp=%v: flip=%v, want %v", a, pa, b, pb, icmp, got, want)
						}
						if icmp {
							break
						}
					}
					if icmp {
						break
					}
				}
			}
		}
	}
}

// Ports are Python ints: values beyond int64 compare exactly, with each other and with R-DIR's bounds.
func TestDirectionHugePorts(t *testing.T) {
	const huge, huger = "99999999999999999998", "99999999999999999999"
	cases := []struct {
		src, sp, dst, dp string
		flip             bool
	}{
		{"10.0.0.1", huge, "8.8.8.8", "53", false},          // R-DIR-L2
		{"10.0.0.1", "40000", "8.8.8.8", huge, true},        // R-DIR-L3
		{"10.0.0.1", "40000", "8.8.8.8", "-" + huge, false}, // R-DIR-L4
		{"8.8.8.8", huge, "10.0.0.1", huger, true},          // R-DIR-N3, B higher
		{"8.8.8.8", huger, "10.0.0.1", huge, false},         // R-DIR-N3, A higher
		{"8.8.8.8", huge, "1.1.1.1", huger, false},          // R-DIR-N2
	}
	for _, c := range cases {
		f := flow.Flow{SrcAddr: c.src, SrcPort: c.sp, DstAddr: c.dst, DstPort: c.dp, Protocol: flow.ProtoUDP}
		got, err := wrongDirection(&f)
		if err != nil || got != c.flip {
			t.Errorf("%s:%s -> %s:%s: flip=%v err %v, want %v", c.src, c.sp, c.dst, c.dp, got, err, c.flip)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// R-NF-9: creation order is group order; a flipped flow moves to the end of the order at the moment it
// is flipped, which is while its own group is built: after the flows of earlier groups, before those of
// later ones (the reference's netflowutils deletes and re-stores it then).
func TestCreationOrder(t *testing.T) {
	s := read(t, hdr+
		"2022-06-02 17:21:39,x,0,10.0.0.1,8.8.8.8,50000,53,UDP,1,60,0,0\n"+
		"2022-06-02 17:21:39,x,0,8.8.4.4,10.0.0.1,53,50001,UDP,1,60,0,0\n"+
		"2022-06-02 17:21:39,x,0,10.0.0.1,1.1.1.1,50002,53,UDP,1,60,0,0\n")
	var got []string
	for _, f := range s.Flows {
		got = append(got, f.SrcAddr+":"+f.SrcPort+"-"+f.DstAddr)
	}
	want := []string{"10.0.0.1:50000-8.8.8.8", "10.0.0.1:50001-8.8.4.4", "10.0.0.1:50002-1.1.1.1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", got, want)
	}
	// The sort of Finalize is stable, so equal starts keep this order (R-ORD-1).
	flow.Finalize(&s, false)
	if s.Flows[1].SrcPort != "50001" {
		t.Errorf("after Finalize: %+v", s.Flows)
	}
}

// Python's int() and float() on field text.
func TestPyConversions(t *testing.T) {
	for in, want := range map[string]int64{" 12 ": 12, "+5": 5, "-0": 0, "1_000": 1000, "007": 7} {
		v, ok := pytext.Int(in)
		if !ok || v.Int64() != want {
			t.Errorf("int(%q) = %v %v, want %d", in, v, ok, want)
		}
	}
	for _, in := range []string{"1__0", "_1", "1_", "0x10", "1.0", "", "  ", "1e3", strings.Repeat("9", 4301)} {
		if v, ok := pytext.Int(in); ok {
			t.Errorf("int(%q) = %v, want ValueError", in, v)
		}
	}
	for in, want := range map[string]float64{"1.5": 1.5, " -2.5e3 ": -2500, "1_0.5": 10.5, ".5": .5, "5.": 5,
		"1e1_0": 1e10, "inf": math.Inf(1), "-Infinity": math.Inf(-1), "1e400": math.Inf(1),
		"-1e400": math.Inf(-1), "1e-400": 0} {
		v, ok := pytext.Float(in)
		if !ok || v != want {
			t.Errorf("float(%q) = %v %v, want %v", in, v, ok, want)
		}
	}
	for _, in := range []string{"nan", "-nan", "+NaN"} {
		if v, ok := pytext.Float(in); !ok || !math.IsNaN(v) {
			t.Errorf("float(%q) = %v %v", in, v, ok)
		}
	}
	for _, in := range []string{"1._5", "1_.5", ".", "e5", "1e", "1e+_5", "0x1p3", "1,5", "infinit", ""} {
		if v, ok := pytext.Float(in); ok {
			t.Errorf("float(%q) = %v, want ValueError", in, v)
		}
	}
}
