// Package loadgen drives collectors for the ingest and fleet benchmarks: it makes a throwaway PKI with
// internal/pki, runs collector processes, and opens many simulated sensor streams over mutual TLS on
// loopback, each with its own sensor certificate, sending realistic flow batches and timing the
// acknowledgements.
//
// To keep the load generator's own CPU small (it shares the machine with the collector), a stream
// marshals its flows once per window and sends each batch as pre-encoded bytes: only the sequence
// number changes between batches. The collector sees ordinary IngestRequest messages.
package loadgen

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// PKI is a CA and the certificates of one benchmark run, in Dir.
type PKI struct {
	Dir    string
	CA     *pki.CA
	Server auth.Files
}

// NewPKI makes a CA in dir and a collector certificate for 127.0.0.1.
func NewPKI(dir string) (*PKI, error) {
	ca, err := pki.InitCA(pki.InitOptions{Dir: dir})
	if err != nil {
		return nil, err
	}
	p := &PKI{Dir: dir, CA: ca}
	p.Server, err = p.Issue(auth.RoleCollector, "collector")
	return p, err
}

// Issue writes a certificate for role and name and returns its files.
func (p *PKI) Issue(role auth.Role, name string) (auth.Files, error) {
	leaf, err := p.CA.Issue(pki.IssueOptions{Role: role, Name: name})
	if err != nil {
		return auth.Files{}, err
	}
	paths, err := leaf.WriteFiles(p.Dir, true)
	if err != nil {
		return auth.Files{}, err
	}
	return auth.Files{CertFile: paths.Cert, KeyFile: paths.Key, CAFile: filepath.Join(p.Dir, pki.CACertFile)}, nil
}

// ClientCreds returns gRPC credentials for files, checking the collector's 127.0.0.1 SAN.
func ClientCreds(files auth.Files) (credentials.TransportCredentials, error) {
	return auth.NewClientCredentials(files, "127.0.0.1", slog.New(slog.DiscardHandler))
}

// CollectorOptions starts one collector process.
type CollectorOptions struct {
	Bin     string // collector binary
	Name    string
	DataDir string
	Store   string // "" = SQLite in DataDir
	Window  time.Duration
	Grace   time.Duration
	Env     []string // added to the environment
	Args    []string // more flags
}

// Proc is a running collector process.
type Proc struct {
	Cmd         *exec.Cmd
	Addr        string
	MetricsAddr string
	DataDir     string
	Log         string
}

// FreeAddr returns a free loopback TCP address.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// StartCollector runs a collector with the PKI's server certificate and waits until it listens.
func StartCollector(p *PKI, o CollectorOptions) (*Proc, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	maddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"--listen", addr, "--metrics-listen", maddr, "--data-dir", o.DataDir,
		"--window", o.Window.String(), "--grace", o.Grace.String(), "--name", o.Name,
		"--cert", p.Server.CertFile, "--key", p.Server.KeyFile, "--ca", p.Server.CAFile, "--log-level", "warn"}
	if o.Store != "" {
		args = append(args, "--store", o.Store)
	}
	args = append(args, o.Args...)
	cmd := exec.Command(o.Bin, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	logPath := filepath.Join(o.DataDir, "collector.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	pr := &Proc{Cmd: cmd, Addr: addr, MetricsAddr: maddr, DataDir: o.DataDir, Log: logPath}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return pr, nil
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			b, _ := os.ReadFile(logPath)
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("collector did not start listening: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop asks the collector to stop (SIGTERM) and kills it after 20 s.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			if err := p.Cmd.Process.Signal(syscall.Signal(0)); err != nil {
				close(done)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.Cmd.Process.Kill()
	}
}

// Usage is a process's resource use, from /proc.
type Usage struct {
	CPU      time.Duration // user + system
	ChildCPU time.Duration // user + system of reaped children
	HWM      int64         // peak resident set, bytes (VmHWM)
	RSS      int64         // resident set now, bytes
	Valid    bool
}

const clockTicks = 100 // USER_HZ on Linux

// ProcUsage reads /proc/pid/stat and /proc/pid/status.
func ProcUsage(pid int) Usage {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 14 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			cut, _ := strconv.ParseInt(f[13], 10, 64)
			cst, _ := strconv.ParseInt(f[14], 10, 64)
			u.CPU = time.Duration(ut+st) * time.Second / clockTicks
			u.ChildCPU = time.Duration(cut+cst) * time.Second / clockTicks
			u.Valid = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			prefix string
			dst    *int64
		}{{"VmHWM:", &u.HWM}, {"VmRSS:", &u.RSS}} {
			if strings.HasPrefix(line, k.prefix) {
				fields := strings.Fields(line[len(k.prefix):])
				if len(fields) > 0 {
					kb, _ := strconv.ParseInt(fields[0], 10, 64)
					*k.dst = kb * 1024
				}
			}
		}
	}
	return u
}

// CommandCPU returns the CPU time, own and of reaped children, of every process whose command name is
// comm (e.g. "postgres"): a server process that exits between two snapshots moves its time into its
// parent's children time, so CPUDelta over the sums stays right.
func CommandCPU(comm string) map[int]time.Duration {
	out := map[int]time.Duration{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		if u := ProcUsage(pid); u.Valid {
			out[pid] = u.CPU + u.ChildCPU
		}
	}
	return out
}

// CPUDelta is the CPU used between two CommandCPU snapshots.
func CPUDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for _, t := range after {
		d += t
	}
	for _, t := range before {
		d -= t
	}
	return d
}

// rawCodec marshals pre-encoded messages as they are and everything else as protobuf. Its name is
// "proto", so the collector decodes with its usual codec.
type rawCodec struct{}

type rawMsg []byte

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(rawMsg); ok {
		return r, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

func (rawCodec) Name() string { return "proto" }

// encodeBatch is IngestRequest{batch: FlowBatch{seq, flows}} given the flows' encoded field (a
// FlowBatch with seq 0 marshalled).
func encodeBatch(dst []byte, seq uint64, flowsField []byte) []byte {
	inner := protowire.SizeTag(1) + protowire.SizeVarint(seq) + len(flowsField)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(inner))
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	dst = protowire.AppendVarint(dst, seq)
	return append(dst, flowsField...)
}

var domains = []string{"www.google.com", "api.github.com", "s3.amazonaws.com", "login.microsoftonline.com",
	"cdn.jsdelivr.net", "update.ubuntu.com", "slack.com", "outlook.office365.com", "zoom.us", "time.cloudflare.com",
	"registry.npmjs.org", "proxy.golang.org", "www.example.com", "graph.facebook.com", "ocsp.digicert.com"}

// Flows makes n realistic flows of a host, first seen in [from, to) of the window starting at ws: mostly
// TCP to a few hundred servers on 443/80, some UDP (DNS, QUIC, NTP) and a little ICMP.
func Flows(rng *rand.Rand, hostIndex, n int, ws int64, from, to float64) []*flowfleetv1.Flow {
	out := make([]*flowfleetv1.Flow, 0, n)
	src := fmt.Sprintf("10.%d.%d.%d", hostIndex>>16&0xff, hostIndex>>8&0xff, hostIndex&0xff)
	for i := 0; i < n; i++ {
		first := from + rng.Float64()*(to-from)
		dur := rng.ExpFloat64() * 2
		f := flow.Flow{SrcAddr: src, DstAddr: fmt.Sprintf("198.51.%d.%d", rng.IntN(4), 1+rng.IntN(250)),
			SrcPkts: 1 + rng.Int64N(40), DstPkts: 1 + rng.Int64N(60), First: first, Last: first + dur,
			NameSource: flow.SourcePassive}
		f.SrcBytes = f.SrcPkts * (60 + rng.Int64N(900))
		f.DstBytes = f.DstPkts * (60 + rng.Int64N(1400))
		switch r := rng.IntN(100); {
		case r < 78:
			f.Protocol, f.SrcPort = flow.ProtoTCP, strconv.Itoa(32768+rng.IntN(28000))
			f.DstPort = []string{"443", "443", "443", "80", "22", "8443"}[rng.IntN(6)]
			f.Name = domains[rng.IntN(len(domains))]
		case r < 97:
			f.Protocol, f.SrcPort = flow.ProtoUDP, strconv.Itoa(32768+rng.IntN(28000))
			f.DstPort = []string{"53", "443", "123"}[rng.IntN(3)]
			f.Name = domains[rng.IntN(len(domains))]
		default:
			f.Protocol = flow.ProtoICMP
			f.NameSource = flow.SourceOriginal
		}
		out = append(out, flowpb.ToProto(&f, ws))
	}
	return out
}

// Stats gathers what the streams observe. Only acknowledgements received while Measuring is set count.
type Stats struct {
	Measuring atomic.Bool
	flows     atomic.Int64
	batches   atomic.Int64
	dups      atomic.Int64
	mu        sync.Mutex
	lat       []time.Duration
	ends      map[WindowKey]time.Time
}

// WindowKey names one host × window.
type WindowKey struct {
	Host  string
	Start int64
}

func NewStats() *Stats { return &Stats{ends: map[WindowKey]time.Time{}} }

func (s *Stats) ack(flows int, lat time.Duration, dup bool) {
	if !s.Measuring.Load() {
		return
	}
	s.flows.Add(int64(flows))
	s.batches.Add(1)
	if dup {
		s.dups.Add(1)
	}
	s.mu.Lock()
	s.lat = append(s.lat, lat)
	s.mu.Unlock()
}

func (s *Stats) windowEnd(k WindowKey, at time.Time) {
	s.mu.Lock()
	if _, ok := s.ends[k]; !ok {
		s.ends[k] = at
	}
	s.mu.Unlock()
}

// Flows and Batches acknowledged while measuring.
func (s *Stats) Flows() int64   { return s.flows.Load() }
func (s *Stats) Batches() int64 { return s.batches.Load() }
func (s *Stats) Dups() int64    { return s.dups.Load() }

// Latency returns the q-quantile (0..1) of ack latencies.
func (s *Stats) Latency(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Quantile(s.lat, q)
}

// WindowEnds returns when each window-end mark was sent.
func (s *Stats) WindowEnds() map[WindowKey]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[WindowKey]time.Time, len(s.ends))
	for k, v := range s.ends {
		out[k] = v
	}
	return out
}

// Quantile sorts d in place and returns its q-quantile.
func Quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(q * float64(len(d)-1))
	return d[i]
}

// StreamConfig is one simulated sensor stream.
type StreamConfig struct {
	Addr     string
	Files    auth.Files
	Host     string // the certificate's name
	Index    int    // distinguishes hosts' addresses
	Window   time.Duration
	Flows    int           // flows per batch
	InFlight int           // batches sent and not yet acknowledged, at most
	Interval time.Duration // between batches; 0 sends as fast as acknowledgements allow
	// WindowEnds sends a window-end mark when a window is over, and stamps flows with the current
	// window; otherwise every batch carries the flows of the window the stream started in.
	WindowEnds bool
}

// Stream is an open ingest stream.
type Stream struct {
	cfg    StreamConfig
	conn   *grpc.ClientConn
	stream flowfleetv1.IngestService_IngestClient
	rng    *rand.Rand
}

// Open connects, sends the hello and waits for the welcome.
func Open(ctx context.Context, cfg StreamConfig) (*Stream, error) {
	creds, err := ClientCreds(cfg.Files)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, err
	}
	st, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := st.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{
		StreamId: "bench-" + cfg.Host, SoftwareVersion: "bench/1", WindowSeconds: uint32(cfg.Window / time.Second)}}}); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := st.Recv(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: hello: %w", cfg.Host, err)
	}
	return &Stream{cfg: cfg, conn: conn, stream: st, rng: rand.New(rand.NewPCG(uint64(cfg.Index), 7))}, nil
}

// Close ends the stream.
func (s *Stream) Close() { s.conn.Close() }

func (s *Stream) flowsField(ws int64, now time.Time) ([]byte, error) {
	w := s.cfg.Window.Seconds()
	from, to := float64(ws), float64(now.UnixMicro())/1e6
	if to <= from {
		to = from + 0.001
	}
	if to > from+w {
		to = from + w - 0.001
	}
	flows := Flows(s.rng, s.cfg.Index, s.cfg.Flows, ws, from, to)
	return proto.Marshal(&flowfleetv1.FlowBatch{Flows: flows})
}

// Run sends batches until ctx ends, then returns; stats records the acknowledgements.
func (s *Stream) Run(ctx context.Context, stats *Stats) error {
	w := int64(s.cfg.Window / time.Second)
	inflight := max(s.cfg.InFlight, 1)
	sem := make(chan struct{}, inflight)
	var mu sync.Mutex
	sent := map[uint64]time.Time{}
	errc := make(chan error, 1)
	go func() {
		for {
			resp, err := s.stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			var seq uint64
			dup := false
			switch {
			case resp.GetAck() != nil:
				seq = resp.GetAck().GetSeq()
			case resp.GetNotice().GetCode() == flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH:
				seq, dup = resp.GetNotice().GetSeq(), true
			default:
				continue
			}
			now := time.Now()
			mu.Lock()
			t0, ok := sent[seq]
			delete(sent, seq)
			mu.Unlock()
			if ok {
				stats.ack(s.cfg.Flows, now.Sub(t0), dup)
				<-sem
			}
		}
	}()
	now := time.Now()
	ws := now.Unix() / w * w
	field, err := s.flowsField(ws, now)
	if err != nil {
		return err
	}
	var tick *time.Ticker
	var tickC <-chan time.Time
	if s.cfg.Interval > 0 {
		// Spread the streams' batches over the interval.
		select {
		case <-time.After(time.Duration(s.rng.Int64N(int64(s.cfg.Interval)))):
		case <-ctx.Done():
			return nil
		}
		tick = time.NewTicker(s.cfg.Interval)
		defer tick.Stop()
		tickC = tick.C
	}
	var boundary <-chan time.Time
	nextBoundary := func() {
		if s.cfg.WindowEnds {
			// A moment after the boundary, as a sensor flushes its engine.
			d := time.Until(time.Unix(ws+w, 0)) + time.Duration(s.rng.Int64N(int64(50*time.Millisecond)))
			boundary = time.After(d)
		}
	}
	nextBoundary()
	var seq uint64
	for {
		if tickC != nil {
			select {
			case <-ctx.Done():
				return nil
			case err := <-errc:
				return err
			case <-boundary:
				if err := s.endWindow(ws, stats); err != nil {
					return err
				}
				now := time.Now()
				ws = now.Unix() / w * w
				if field, err = s.flowsField(ws, now); err != nil {
					return err
				}
				nextBoundary()
				continue
			case <-tickC:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case sem <- struct{}{}:
		}
		if s.cfg.WindowEnds && tickC == nil {
			if now := time.Now(); now.Unix()/w*w != ws {
				if err := s.endWindow(ws, stats); err != nil {
					return err
				}
				ws = now.Unix() / w * w
				if field, err = s.flowsField(ws, now); err != nil {
					return err
				}
			}
		}
		seq++
		// A new buffer each time: gRPC may still hold the previous one after SendMsg returns.
		buf := encodeBatch(make([]byte, 0, len(field)+24), seq, field)
		mu.Lock()
		sent[seq] = time.Now()
		mu.Unlock()
		if err := s.stream.SendMsg(rawMsg(buf)); err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func (s *Stream) endWindow(ws int64, stats *Stats) error {
	stats.windowEnd(WindowKey{s.cfg.Host, ws}, time.Now())
	return s.stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{
		WindowStart: ws, WindowSeconds: uint32(s.cfg.Window / time.Second)}}})
}

// OpenAll opens streams with at most par handshakes at a time.
func OpenAll(ctx context.Context, cfgs []StreamConfig, par int) ([]*Stream, error) {
	out := make([]*Stream, len(cfgs))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	for i := range cfgs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := Open(ctx, cfgs[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out[i] = s
		}()
	}
	wg.Wait()
	if first != nil {
		for _, s := range out {
			if s != nil {
				s.Close()
			}
		}
		return nil, first
	}
	return out, nil
}

// Running is a set of streams sending on goroutines of their own (RunAll).
type Running struct {
	streams []*Stream
	wg      sync.WaitGroup
	errs    chan error
}

// RunAll runs every stream until ctx ends.
func RunAll(ctx context.Context, streams []*Stream, stats *Stats) *Running {
	r := &Running{streams: streams, errs: make(chan error, len(streams))}
	for _, s := range streams {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := s.Run(ctx, stats); err != nil && ctx.Err() == nil {
				r.errs <- err
			}
		}()
	}
	return r
}

// Wait waits for the streams (their context must be ending), closes them and returns the first error
// one of them stopped with before that.
func (r *Running) Wait() error {
	r.wg.Wait()
	for _, s := range r.streams {
		s.Close()
	}
	select {
	case err := <-r.errs:
		return err
	default:
		return nil
	}
}

// Metric reads one sample value (the first line starting with name) from a Prometheus text endpoint.
func Metric(addr, name string) (float64, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			return strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// MB formats bytes as MiB.
func MB(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// BuildCollector builds pkg (e.g. "./cmd/collector") into dir and returns the binary's path.
func BuildCollector(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, "collector")
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// FreshSchema makes an empty schema on the PostgreSQL server of dsn and returns a DSN using it, and a
// function that drops it.
func FreshSchema(ctx context.Context, dsn string) (string, func(), error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}
	return u.String(), drop, nil
}

// DirSize sums the sizes of the files under dir.
func DirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// SystemCPU reads the machine's busy and total CPU time from /proc/stat (all cores), so that a run can
// report how busy the machine was, other processes included.
func SystemCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 7 || i > 7 { // steal is busy elsewhere; guest times are already in user
			if i == 7 {
				sum += n
			}
			continue
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTicks, time.Duration(sum) * time.Second / clockTicks
}

// Machine measures the machine's CPU use between Start and Stop.
type Machine struct{ busy0, total0 time.Duration }

func (m *Machine) Start() { m.busy0, m.total0 = SystemCPU() }

// Stop returns the cores busy on average (all processes) and the share of the machine that was.
func (m *Machine) Stop(elapsed time.Duration) (cores, share float64) {
	b, t := SystemCPU()
	if t <= m.total0 {
		return 0, 0
	}
	return (b - m.busy0).Seconds() / elapsed.Seconds(), float64(b-m.busy0) / float64(t-m.total0)
}
