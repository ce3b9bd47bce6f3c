// Command search measures fleet search (docs/search.md) on a synthetic fleet stored in SQLite in a
// temporary directory: it stores -hosts × -windows samples of -flows flows each (destinations drawn
// from a skewed pool of -dests names, as a fleet's traffic is), timing the store without the index;
// then runs the indexer over them (the back-fill), timing it and measuring the disk it adds; then times
// searches by name, by port and a top by destination name.
//
//	go run ./bench/search -hosts 100 -windows 60 -flows 300   # 1.8 M flows: 100 hosts × 1 h at 5 flows/s
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowindex"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
)

func main() {
	hosts := flag.Int("hosts", 100, "hosts")
	windows := flag.Int("windows", 60, "60-second windows per host")
	flows := flag.Int("flows", 300, "flows per window")
	dests := flag.Int("dests", 5000, "destination names in the pool")
	flag.Parse()
	if err := run(*hosts, *windows, *flows, *dests); err != nil {
		fmt.Fprintln(os.Stderr, "search:", err)
		os.Exit(1)
	}
}

func dbSize(dir string) int64 {
	var n int64
	for _, f := range []string{"flowfleet.db", "flowfleet.db-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func run(hosts, windows, flowsPer, dests int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "searchbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.2, 1, uint64(dests-1))
	ports := []string{"443", "443", "443", "80", "53", "8443", "22", "5432"}
	ws0 := time.Now().Add(-2*time.Hour).Unix() / 60 * 60
	var seq uint64
	start := time.Now()
	var storeTime time.Duration
	for w := 0; w < windows; w++ {
		ws := ws0 + int64(w)*60
		for h := 0; h < hosts; h++ {
			host := fmt.Sprintf("host%04d", h)
			fl := make([]*flowfleetv1.Flow, flowsPer)
			for i := range fl {
				d := zipf.Uint64()
				fl[i] = &flowfleetv1.Flow{SrcAddr: fmt.Sprintf("10.%d.%d.10", h/250, h%250), SrcPort: fmt.Sprint(30000 + rng.IntN(30000)),
					DstAddr: fmt.Sprintf("203.%d.%d.%d", d/65536%256, d/256%256, d%256), DstPort: ports[d%uint64(len(ports))],
					DstName: fmt.Sprintf("svc%d.example%d.com", d, d%50), NameSource: flowfleetv1.NameSource_NAME_SOURCE_PASSIVE,
					Protocol: flowfleetv1.Protocol_PROTOCOL_TCP, SrcPkts: 10, DstPkts: 12, SrcBytes: 900, DstBytes: 12000,
					FirstSeen: float64(ws), LastSeen: float64(ws + 5), WindowStart: ws}
			}
			var chunks [][]byte
			for i := 0; i < len(fl); i += store.FlowChunkFlows {
				b, err := flowpb.Encode(fl[i:min(i+store.FlowChunkFlows, len(fl))])
				if err != nil {
					return err
				}
				chunks = append(chunks, b)
			}
			seq++
			t0 := time.Now()
			if _, err := st.SaveBatches(ctx, []store.Batch{{Host: host, StreamID: "s", Seq: seq, Received: time.Now(),
				Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 60, FlowCount: 1, Flows: []byte("x")}}}}); err != nil {
				return err
			}
			if _, err := st.CloseWindow(ctx, store.WindowRef{Host: host, WindowStart: ws, WindowSeconds: 60},
				func(c store.WindowContent) (store.NewSample, error) {
					id := fmt.Sprintf("%s_%d", host, ws)
					return store.NewSample{ID: id, FileName: id + ".bf", FlowCount: len(fl), Bytes: 1, State: store.StateWritten,
						Content: []byte("c"), FlowChunks: chunks}, nil
				}); err != nil {
				return err
			}
			storeTime += time.Since(t0)
		}
	}
	total := hosts * windows * flowsPer
	before := dbSize(dir)
	fmt.Printf("fleet: %d hosts × %d windows × %d flows = %d flows (generated and stored in %v)\n", hosts, windows, flowsPer, total, time.Since(start).Round(time.Millisecond))
	fmt.Printf("store without index: %v, %.0f flows/s; database %.1f MiB\n", storeTime.Round(time.Millisecond),
		float64(total)/storeTime.Seconds(), float64(before)/(1<<20))

	x := &flowindex.Indexer{Store: st, Batch: 200}
	t0 := time.Now()
	for {
		n, err := x.IndexPending(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	it := time.Since(t0)
	after := dbSize(dir)
	rows := 0
	if err := st.SearchFlowIndex(ctx, store.FlowIndexQuery{DstPort: -1}, func(store.FlowIndexRow) error { rows++; return nil }); err != nil {
		return err
	}
	fmt.Printf("index (back-fill): %v, %.0f flows/s; %d rows (%.1f flows a row); +%.1f MiB = %.1f MiB per million flows\n",
		it.Round(time.Millisecond), float64(total)/it.Seconds(), rows, float64(total)/float64(rows),
		float64(after-before)/(1<<20), float64(after-before)/(1<<20)/(float64(total)/1e6))

	timeIt := func(what string, fn func() (int, error)) error {
		t0 := time.Now()
		n, err := fn()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		fmt.Printf("%-44s %6d results  %v\n", what, n, time.Since(t0).Round(time.Microsecond))
		return nil
	}
	search := func(f flowindex.Filter) func() (int, error) {
		return func() (int, error) {
			n := 0
			_, err := flowindex.Search(ctx, st, f, func(flowindex.Result) error { n++; return nil })
			return n, err
		}
	}
	for _, c := range []struct {
		what string
		fn   func() (int, error)
	}{
		{"search --dst svc1.example1.com (popular)", search(flowindex.Filter{Dst: "svc1.example1.com"})},
		{"search --dst svc4001.example1.com (rare)", search(flowindex.Filter{Dst: fmt.Sprintf("svc%d.example1.com", dests-dests%50+1-50)})},
		{"search --dst '*.example7.com' --limit 1000", search(flowindex.Filter{Dst: "*.example7.com", Limit: 1000})},
		{"search --port 22 --limit 1000", search(flowindex.Filter{Port: 22, Limit: 1000})},
		{"search --port 22 (all)", search(flowindex.Filter{Port: 22})},
		{"top --by dst-name --since 10m", func() (int, error) {
			g, err := flowindex.Top(ctx, st, flowindex.Filter{Since: time.Unix(ws0+int64(windows-10)*60, 0)}, "dst-name", 10)
			return len(g), err
		}},
		{"top --by dst-name (all)", func() (int, error) {
			g, err := flowindex.Top(ctx, st, flowindex.Filter{}, "dst-name", 10)
			return len(g), err
		}},
	} {
		if err := timeIt(c.what, c.fn); err != nil {
			return err
		}
	}
	return nil
}
