// Command closemem measures what closing one large window costs the collector (issue #14, item 7): the
// peak resident memory of the process that closes it, and the time to page through the sample's flows
// with ListSampleFlows over mutual TLS on loopback. It runs in two steps, each its own process, so that
// the closing process's peak is the close's own:
//
//	go run ./bench/closemem -prepare -dir /tmp/cm -flows 100000 -name-bytes 1024
//	go run ./bench/closemem -close -dir /tmp/cm     # closes the window, then pages through the sample
//
// -prepare stores one window of -flows flows (names of -name-bytes bytes) for host "bench" straight into
// a new SQLite store in -dir, in batches of 10,000 flows as sensors send them (no bound applies: this is
// the worst case a window can hold without one). -close starts a collector on that store, waits for the
// window's sample, prints the peak RSS (getrusage) and the RSS before the close, then pages through the
// sample with ListSampleFlows (page size 1,000) and prints the time. Only APIs that exist before and
// after issue #14 are used, so the same program measures both.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/collector"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

const (
	host        = "bench"
	windowStart = int64(1_700_000_040)
	windowSecs  = 60
	batchFlows  = 10_000
)

func main() {
	var (
		prepare   = flag.Bool("prepare", false, "store the window")
		closeIt   = flag.Bool("close", false, "close the window and page through its sample")
		dir       = flag.String("dir", "", "working directory (store, samples, certificates)")
		flows     = flag.Int("flows", 100_000, "flows in the window (-prepare)")
		nameBytes = flag.Int("name-bytes", 1024, "bytes of each flow's name (-prepare)")
		pageSize  = flag.Int("page-size", 1000, "ListSampleFlows page size (-close)")
		boundB    = flag.Int64("max-window-bytes", 0, "apply this per-window byte bound while storing, as ingest does (-prepare; needs a store with Batch.Limits)")
	)
	flag.Parse()
	var err error
	switch {
	case *dir == "":
		err = fmt.Errorf("-dir is required")
	case *prepare:
		err = runPrepare(*dir, *flows, *nameBytes, *boundB)
	case *closeIt:
		err = runClose(*dir, *pageSize)
	default:
		err = fmt.Errorf("-prepare or -close")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "closemem:", err)
		os.Exit(1)
	}
}

func runPrepare(dir string, n, nameBytes int, bound int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	suffix := ".example.com"
	pad := strings.Repeat("n", max(nameBytes-len(suffix)-8, 0))
	received := time.Unix(windowStart+windowSecs, 0)
	total := 0
	for seq := uint64(1); total < n; seq++ {
		var batch []*flowfleetv1.Flow
		for i := 0; i < batchFlows && total < n; i++ {
			batch = append(batch, &flowfleetv1.Flow{
				SrcAddr: "10.0.0.5", SrcPort: strconv.Itoa(1024 + total%60000), DstAddr: "93.184.216.34", DstPort: "443",
				DstName: fmt.Sprintf("%08d", total) + pad + suffix, NameSource: flowfleetv1.NameSource_NAME_SOURCE_SESSION,
				Protocol: flowfleetv1.Protocol_PROTOCOL_TCP, SrcPkts: 3, SrcBytes: 300, DstPkts: 2, DstBytes: 2000,
				FirstSeen: float64(windowStart) + float64(total)/float64(n)*50, LastSeen: float64(windowStart) + 55,
				WindowStart: windowStart,
			})
			total++
		}
		enc, err := flowpb.Encode(batch)
		if err != nil {
			return err
		}
		b := store.Batch{Host: host, StreamID: "bench", Seq: seq, Received: received,
			Parts: []store.BatchPart{{WindowStart: windowStart, WindowSeconds: windowSecs, FlowCount: len(batch), Flows: enc}}}
		if bound > 0 {
			// Batch.Limits{MaxBytes} by reflection, so that this program still builds against a store
			// without it (before issue #14). Without FlowEnds a part that does not fit is dropped whole.
			l := reflect.ValueOf(&b).Elem().FieldByName("Limits")
			if !l.IsValid() {
				return fmt.Errorf("-max-window-bytes: this store has no per-window bound")
			}
			l.FieldByName("MaxBytes").SetInt(bound)
		}
		if _, err := st.SaveBatches(ctx, []store.Batch{b}); err != nil {
			return err
		}
	}
	if err := st.EndWindow(ctx, store.WindowRef{Host: host, WindowStart: windowStart, WindowSeconds: windowSecs}, 0); err != nil {
		return err
	}
	fmt.Printf("prepared %d flows with %d-byte names in %s\n", total, nameBytes, dir)
	return nil
}

func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

func runClose(dir string, pageSize int) error {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "flowfleet.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	certs := filepath.Join(dir, "certs")
	ca, err := pki.InitCA(pki.InitOptions{Dir: certs, Force: true})
	if err != nil {
		return err
	}
	files := func(role auth.Role, name string, opts pki.IssueOptions) (auth.Files, error) {
		opts.Role, opts.Name = role, name
		leaf, err := ca.Issue(opts)
		if err != nil {
			return auth.Files{}, err
		}
		p, err := leaf.WriteFiles(certs, true)
		return auth.Files{CertFile: p.Cert, KeyFile: p.Key, CAFile: filepath.Join(certs, pki.CACertFile)}, err
	}
	serverFiles, err := files(auth.RoleCollector, "collector", pki.IssueOptions{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		return err
	}
	readerFiles, err := files(auth.RoleReader, "reader", pki.IssueOptions{})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := collector.New(st, collector.Config{DataDir: dir, Window: windowSecs * time.Second, Grace: time.Second,
		CloseInterval: 100 * time.Millisecond}, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	creds, err := auth.NewServerCredentials(serverFiles, log)
	if err != nil {
		return err
	}
	srv, _, err := c.NewGRPCServer(creds)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	runtime.GC()
	before := maxRSS()
	heapPeak := make(chan uint64)
	stopHeap := make(chan struct{})
	go func() { // the Go heap's peak, sampled
		var peak uint64
		var m runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopHeap:
				heapPeak <- peak
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { _ = c.Run(runCtx); close(done) }()
	id := host + "_" + strconv.FormatInt(windowStart, 10)
	var x *store.Sample
	for x == nil {
		time.Sleep(20 * time.Millisecond)
		x, _ = st.GetSample(ctx, id)
	}
	closeTime := time.Since(start)
	peak := maxRSS()
	close(stopHeap)
	heap := <-heapPeak
	cancel()
	<-done
	fmt.Printf("closed %s: %d flows, .bf %d bytes in %.1f s; RSS before %d MiB, peak %d MiB; Go heap peak %d MiB\n",
		id, x.FlowCount, x.Bytes, closeTime.Seconds(), before>>20, peak>>20, heap>>20)

	clientCreds, err := auth.NewClientCredentials(readerFiles, "127.0.0.1", log)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(clientCreds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flowfleetv1.NewSampleServiceClient(conn)
	start = time.Now()
	token, pages, got := "", 0, 0
	for {
		resp, err := client.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id, PageSize: uint32(pageSize), PageToken: token})
		if err != nil {
			return fmt.Errorf("page %d: %w", pages, err)
		}
		pages++
		got += len(resp.GetFlows())
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if got != x.FlowCount {
		return fmt.Errorf("paged %d flows, the sample has %d", got, x.FlowCount)
	}
	el := time.Since(start)
	fmt.Printf("paged %d flows in %d pages of %d: %.2f s (%.1f ms a page)\n", got, pages, pageSize, el.Seconds(),
		float64(el.Milliseconds())/float64(pages))
	return nil
}
