package flowindex_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowindex"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	open := func(t *testing.T, dsn string) store.Store {
		st, err := store.Open(tctx(t), dsn)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, filepath.Join(t.TempDir(), "flowfleet.db"))) })
	t.Run("postgres", func(t *testing.T) { fn(t, open(t, storetest.PostgresDSN(t))) })
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const ws0 = int64(1_700_000_100)

type dst struct {
	src, addr, port, name string
	source                flowfleetv1.NameSource
	proto                 flowfleetv1.Protocol
	n                     int
}

var (
	tcp, udp, icmp                 = flowfleetv1.Protocol_PROTOCOL_TCP, flowfleetv1.Protocol_PROTOCOL_UDP, flowfleetv1.Protocol_PROTOCOL_ICMP
	passive, session, dnsSrc, orig = flowfleetv1.NameSource_NAME_SOURCE_PASSIVE, flowfleetv1.NameSource_NAME_SOURCE_SESSION,
		flowfleetv1.NameSource_NAME_SOURCE_CACHE, flowfleetv1.NameSource_NAME_SOURCE_ORIGINAL
)

// writeSample stores host's window ws as a sample whose flows go to dsts (n flows each).
func writeSample(t *testing.T, st store.Store, host string, ws int64, dsts ...dst) {
	t.Helper()
	var flows []*flowfleetv1.Flow
	for _, d := range dsts {
		for i := 0; i < d.n; i++ {
			flows = append(flows, &flowfleetv1.Flow{SrcAddr: d.src, SrcPort: "40000", DstAddr: d.addr, DstPort: d.port,
				DstName: d.name, NameSource: d.source, Protocol: d.proto, SrcPkts: 2, DstPkts: 3, SrcBytes: 100, DstBytes: 1000,
				FirstSeen: float64(ws), LastSeen: float64(ws + 1), WindowStart: ws})
		}
	}
	var chunks [][]byte
	for i := 0; i < len(flows); i += store.FlowChunkFlows {
		b, err := flowpb.Encode(flows[i:min(i+store.FlowChunkFlows, len(flows))])
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, b)
	}
	ctx := tctx(t)
	b := store.Batch{Host: host, StreamID: "s", Seq: nextSeq(), Received: time.Now(), Parts: []store.BatchPart{{
		WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte("x")}}}
	if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
	_, err := st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60},
		func(c store.WindowContent) (store.NewSample, error) {
			id := fmt.Sprintf("%s_%d_%d", c.Host, c.WindowStart, c.Revision)
			return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: len(flows), Bytes: 1, State: store.StateWritten,
				Content: []byte("c"), FlowChunks: chunks}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

var seq atomic.Uint64

func nextSeq() uint64 { return seq.Add(1) }

// labeled makes the indexer see every sample as enriched, each flow to name labeled cats[name].
type labeled struct {
	store.Store
	cats map[string]string
}

func (l labeled) UnindexedSamples(ctx context.Context, limit int) ([]store.IndexTodo, error) {
	todo, err := l.Store.UnindexedSamples(ctx, limit)
	for i := range todo {
		todo[i].Enriched = true
	}
	return todo, err
}

func (l labeled) SampleFlowLabels(ctx context.Context, id string, from, to int) ([][]store.FlowLabel, error) {
	chunks, err := l.Store.SampleFlowChunks(ctx, id, from, to)
	out := make([][]store.FlowLabel, len(chunks))
	for i, c := range chunks {
		flows, _ := flowpb.Decode(c)
		for _, f := range flows {
			out[i] = append(out[i], store.FlowLabel{Category: l.cats[f.GetDstName()]})
		}
	}
	return out, err
}

func fleet(t *testing.T, st store.Store) {
	writeSample(t, st, "web01", ws0,
		dst{"10.0.0.1", "93.184.216.34", "443", "www.example.com", session, tcp, 3},
		dst{"10.0.0.1", "8.8.8.8", "53", "dns.google", orig, udp, 1})
	writeSample(t, st, "web02", ws0,
		dst{"10.0.0.2", "93.184.216.35", "443", "API.example.com", dnsSrc, tcp, 2},
		dst{"10.0.0.2", "1.1.1.1", "", "1.1.1.1", orig, icmp, 1})
	writeSample(t, st, "db01", ws0+60,
		dst{"10.0.1.1", "93.184.216.36", "443", "a.b.example.com", passive, tcp, 1},
		dst{"10.0.1.1", "93.184.216.37", "80", "example.com", passive, tcp, 4},
		dst{"fd00::1", "2001:db8::1", "443", "v6.example.org", session, tcp, 2})
	writeSample(t, st, "web01", ws0+60,
		dst{"10.0.0.1", "93.184.216.34", "443", "www.example.com", session, tcp, 1})
}

func indexAll(t *testing.T, st store.Store) {
	t.Helper()
	x := &flowindex.Indexer{Store: labeled{st, map[string]string{"www.example.com": "web", "dns.google": "dns"}}}
	if n, err := x.IndexPending(tctx(t)); err != nil || n != 4 {
		t.Fatalf("indexed %d samples, err %v; want 4", n, err)
	}
	if n, err := x.IndexPending(tctx(t)); err != nil || n != 0 {
		t.Fatalf("indexed %d samples again, err %v; want none", n, err)
	}
}

func search(t *testing.T, st store.Store, f flowindex.Filter) ([]string, bool) {
	t.Helper()
	var out []string
	cut, err := flowindex.Search(tctx(t), st, f, func(r flowindex.Result) error {
		out = append(out, fmt.Sprintf("%s@%d %s>%s:%d %s %s/%s %s f%d p%d b%d", r.Host, r.WindowStart-ws0, r.SrcAddr, r.DstAddr,
			r.DstPort, r.DstName, r.Protocol, r.NameSource, r.Category, r.Flows, r.Packets, r.Bytes))
		return nil
	})
	if err != nil {
		t.Fatalf("search %+v: %v", f, err)
	}
	return out, cut
}

// The samples stored before the indexer ran are indexed (back-fill); each filter finds exactly its rows,
// newest window first (then by host), with flows, packets and bytes summed per destination.
func TestSearchFilters(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		fleet(t, st)
		indexAll(t, st)
		www1 := "web01@60 10.0.0.1>93.184.216.34:443 www.example.com tcp/session web f1 p5 b1100"
		www0 := "web01@0 10.0.0.1>93.184.216.34:443 www.example.com tcp/session web f3 p15 b3300"
		api := "web02@0 10.0.0.2>93.184.216.35:443 api.example.com tcp/cache  f2 p10 b2200"
		dns := "web01@0 10.0.0.1>8.8.8.8:53 dns.google udp/original dns f1 p5 b1100"
		ping := "web02@0 10.0.0.2>1.1.1.1:-1 1.1.1.1 icmp/original  f1 p5 b1100"
		ab := "db01@60 10.0.1.1>93.184.216.36:443 a.b.example.com tcp/passive  f1 p5 b1100"
		apex := "db01@60 10.0.1.1>93.184.216.37:80 example.com tcp/passive  f4 p20 b4400"
		v6 := "db01@60 fd00::1>2001:db8::1:443 v6.example.org tcp/session  f2 p10 b2200"
		since := time.Unix(ws0+60, 0)
		for _, c := range []struct {
			name string
			f    flowindex.Filter
			want []string
		}{
			{"name", flowindex.Filter{Dst: "WWW.example.com"}, []string{www1, www0}},
			{"glob one label", flowindex.Filter{Dst: "*.example.com"}, []string{www1, www0, api}},
			{"ip", flowindex.Filter{Dst: "8.8.8.8"}, []string{dns}},
			{"cidr", flowindex.Filter{Dst: "93.184.216.32/30"}, []string{www1, www0, api}},
			{"v6 cidr", flowindex.Filter{Dst: "2001:db8::/32"}, []string{v6}},
			{"port", flowindex.Filter{Port: 80}, []string{apex}},
			{"proto", flowindex.Filter{Proto: "icmp"}, []string{ping}},
			{"name source", flowindex.Filter{NameSource: "passive"}, []string{ab, apex}},
			{"category", flowindex.Filter{Category: "dns"}, []string{dns}},
			{"src", flowindex.Filter{Src: "10.0.0.0/24", Port: 443}, []string{www1, www0, api}},
			{"hosts", flowindex.Filter{Hosts: []string{"web02", "db01"}, Dst: "*.example.com"}, []string{api}},
			{"since", flowindex.Filter{Since: since, Port: 443}, []string{ab, v6, www1}},
			{"until", flowindex.Filter{Until: since, Proto: "tcp"}, []string{www0, api}},
		} {
			got, cut := search(t, st, c.f)
			if !reflect.DeepEqual(got, c.want) || cut {
				t.Errorf("%s: got (cut %v)\n%q\nwant\n%q", c.name, cut, got, c.want)
			}
		}
	})
}

// A search over many rows streams them and stops at the limit, saying the limit cut it.
func TestSearchStopsAtLimit(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		var many []dst
		for i := 0; i < 1500; i++ {
			many = append(many, dst{"10.0.0.1", fmt.Sprintf("10.9.%d.%d", i/250, i%250), "443", fmt.Sprintf("h%d.example.net", i), passive, tcp, 1})
		}
		writeSample(t, st, "big", ws0, many...)
		if n, err := (&flowindex.Indexer{Store: st}).IndexPending(tctx(t)); err != nil || n != 1 {
			t.Fatalf("indexed %d, %v", n, err)
		}
		got, cut := search(t, st, flowindex.Filter{Dst: "*.example.net", Limit: 10})
		if len(got) != 10 || !cut {
			t.Fatalf("got %d rows, cut %v; want 10, cut", len(got), cut)
		}
		if got, cut = search(t, st, flowindex.Filter{Dst: "10.9.0.0/16"}); len(got) != 1500 || cut {
			t.Fatalf("got %d rows, cut %v; want 1500 uncut", len(got), cut)
		}
	})
}

func TestTop(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		fleet(t, st)
		indexAll(t, st)
		for _, c := range []struct {
			by   string
			f    flowindex.Filter
			want []flowindex.Group
		}{
			{"dst-name", flowindex.Filter{}, []flowindex.Group{{Key: "example.com", Hosts: 1, Flows: 4, Packets: 20, Bytes: 4400},
				{Key: "www.example.com", Hosts: 1, Flows: 4, Packets: 20, Bytes: 4400}, {Key: "api.example.com", Hosts: 1, Flows: 2, Packets: 10, Bytes: 2200}}},
			{"host", flowindex.Filter{Port: 443}, []flowindex.Group{{Key: "web01", Hosts: 1, Flows: 4, Packets: 20, Bytes: 4400},
				{Key: "db01", Hosts: 1, Flows: 3, Packets: 15, Bytes: 3300}, {Key: "web02", Hosts: 1, Flows: 2, Packets: 10, Bytes: 2200}}},
			{"port", flowindex.Filter{Dst: "93.184.216.0/24"}, []flowindex.Group{{Key: "443", Hosts: 3, Flows: 7, Packets: 35, Bytes: 7700},
				{Key: "80", Hosts: 1, Flows: 4, Packets: 20, Bytes: 4400}}},
			{"category", flowindex.Filter{Hosts: []string{"web01"}}, []flowindex.Group{{Key: "web", Hosts: 1, Flows: 4, Packets: 20, Bytes: 4400},
				{Key: "dns", Hosts: 1, Flows: 1, Packets: 5, Bytes: 1100}}},
			{"dst", flowindex.Filter{Proto: "udp"}, []flowindex.Group{{Key: "8.8.8.8", Hosts: 1, Flows: 1, Packets: 5, Bytes: 1100}}},
		} {
			got, err := flowindex.Top(tctx(t), st, c.f, c.by, 3)
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("top by %s: %+v, %v\nwant %+v", c.by, got, err, c.want)
			}
		}
	})
}

// Bad filters fail naming their field, before any query.
func TestBadFilters(t *testing.T) {
	long := string(make([]byte, 1025))
	for _, c := range []struct {
		f     flowindex.Filter
		by    string
		field string
	}{
		{flowindex.Filter{Dst: "10.0.0.0/33"}, "", "dst"},
		{flowindex.Filter{Dst: "a.*.example.com"}, "", "dst"},
		{flowindex.Filter{Dst: "*"}, "", "dst"},
		{flowindex.Filter{Dst: "**.example.com"}, "", "dst"},
		{flowindex.Filter{Dst: "a..b"}, "", "dst"},
		{flowindex.Filter{Dst: long}, "", "dst"},
		{flowindex.Filter{Src: "example.com"}, "", "src"},
		{flowindex.Filter{Src: "10.0.0.1/40"}, "", "src"},
		{flowindex.Filter{Port: 70000}, "", "port"},
		{flowindex.Filter{Proto: "sctp"}, "", "proto"},
		{flowindex.Filter{NameSource: "guess"}, "", "name_source"},
		{flowindex.Filter{Category: long[:257]}, "", "category"},
		{flowindex.Filter{Since: time.Unix(ws0, 0), Until: time.Unix(ws0, 0)}, "", "until"},
		{flowindex.Filter{Limit: flowindex.MaxLimit + 1}, "", "limit"},
		{flowindex.Filter{Limit: -1}, "", "limit"},
		{flowindex.Filter{Hosts: make([]string, store.MaxIndexHosts+1)}, "", "hosts"},
		{flowindex.Filter{}, "srcport", "by"},
	} {
		var err error
		if c.by == "" {
			_, err = flowindex.Search(context.Background(), nil, c.f, func(flowindex.Result) error { return nil })
		} else {
			_, err = flowindex.Top(context.Background(), nil, c.f, c.by, 10)
		}
		var fe *flowindex.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v by %q: error %v, want one naming %s", c.f, c.by, err, c.field)
		}
	}
}

// Indexing a window's newer revision replaces the older revision's rows (a revision holds the whole
// window); an enriched sample indexed before its labels is indexed again.
func TestReindexReplaces(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		fleet(t, st)
		if n, err := (&flowindex.Indexer{Store: st}).IndexPending(tctx(t)); err != nil || n != 4 {
			t.Fatalf("indexed %d, %v", n, err)
		}
		// A late batch reopens web01's first window; its revision 2 holds the whole window.
		writeSample(t, st, "web01", ws0,
			dst{"10.0.0.1", "93.184.216.34", "443", "www.example.com", session, tcp, 5})
		if n, err := (&flowindex.Indexer{Store: st}).IndexPending(tctx(t)); err != nil || n != 1 {
			t.Fatalf("indexed %d, %v; want the new revision", n, err)
		}
		got, _ := search(t, st, flowindex.Filter{Hosts: []string{"web01"}, Until: time.Unix(ws0+60, 0)})
		want := []string{"web01@0 10.0.0.1>93.184.216.34:443 www.example.com tcp/session  f5 p25 b5500"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("web01's first window after revision 2: %q, want %q", got, want)
		}
	})
}
