package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Scale-out (DESIGN.md): three collector processes share one PostgreSQL store; ten sensors stream
// numbered batches over mTLS, each failing over to the next collector when its stream breaks and
// resending what was not acknowledged. One collector is killed with SIGKILL while batches flow. Two of
// its sensors go silent at that moment, so their windows never get an end mark: another collector must
// close them once the grace has passed. At the end every acknowledged flow is in exactly one sample
// (its window's latest revision), and no window has two samples of one revision.
func TestMultiCollectorFailover(t *testing.T) {
	dsn := storetest.PostgresDSN(t) // skips without FLOWFLEET_TEST_POSTGRES
	if testing.Short() {
		t.Skip("multi-collector test skipped in -short mode")
	}
	const (
		window    = 10 * time.Second
		grace     = 3 * time.Second
		nColl     = 3
		nSensors  = 10
		victim    = 0
		sendFor   = 12 * time.Second
		killAfter = 4 * time.Second
	)
	began := time.Now()
	bin := buildCollector(t)
	p := newTestPKI(t)
	defer func() { t.Logf("took %s", time.Since(began).Round(time.Millisecond)) }()

	type proc struct {
		cmd  *exec.Cmd
		addr string
		dir  string
		log  string
	}
	procs := make([]*proc, nColl)
	for i := range procs {
		dir := t.TempDir()
		addr := multiFreeAddr(t)
		files := p.Files(auth.RoleCollector, "collector")
		logPath := filepath.Join(dir, "collector.log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--listen", addr, "--metrics-listen", "", "--data-dir", dir, "--store", dsn,
			"--window", window.String(), "--grace", grace.String(), "--name", fmt.Sprintf("c%d", i),
			"--cert", files.CertFile, "--key", files.KeyFile, "--ca", files.CAFile, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("collector c%d log (tail):\n%s", i, tail(string(b), 3000))
			}
		})
		procs[i] = &proc{cmd: cmd, addr: addr, dir: dir, log: logPath}
	}
	for _, pr := range procs {
		waitFor(t, "collector "+pr.addr+" to listen", func() bool {
			c, err := net.DialTimeout("tcp", pr.addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}

	sensors := make([]*simSensor, nSensors)
	for i := range sensors {
		name := fmt.Sprintf("sensor%02d", i)
		s := &simSensor{t: t, name: name, index: i, window: window, files: p.Issue(t, auth.RoleSensor, name, pki.IssueOptions{}),
			streamID: "stream-" + name, acked: map[uint64]int64{}}
		for k := 0; k < nColl; k++ { // each sensor starts on collector i%3 and fails over round the list
			s.addrs = append(s.addrs, procs[(i+k)%nColl].addr)
		}
		// Two of the victim's sensors vanish with it: their open windows get no end mark.
		s.silent = i%nColl == victim && (i == 6 || i == 9)
		sensors[i] = s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range sensors {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx, stop) }()
	}
	time.Sleep(killAfter)
	// Not just after a window boundary: the silent sensors' last acked window must still be open (no end
	// mark sent) when the victim dies.
	if into := time.Duration(time.Now().UnixNano() % int64(window)); into < 1500*time.Millisecond {
		time.Sleep(1500*time.Millisecond - into)
	}
	if err := procs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, err := procs[victim].cmd.Process.Wait(); err != nil || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("collector c%d did not die of SIGKILL: %v, %v", victim, st, err)
	}
	killedAt := time.Now()
	for _, s := range sensors {
		s.mu.Lock()
		t.Logf("%s on %s at the kill", s.name, s.addrs[s.cur])
		s.mu.Unlock()
	}
	t.Logf("killed collector c%d at %s", victim, killedAt.Format(time.TimeOnly))
	time.Sleep(sendFor - killAfter)
	close(stop)
	wg.Wait()
	t.Logf("sensors finished %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	if t.Failed() {
		return
	}

	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitForLong(t, 30*time.Second, "every window to close", func() bool {
		n, err := st.CountOpenWindows(ctx)
		return err == nil && n == 0
	})
	t.Logf("every window closed %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	waitForLong(t, 30*time.Second, "every sample's file written", func() bool {
		left, _, err := st.ListSamples(ctx, store.SampleFilter{State: store.StateClosed})
		return err == nil && len(left) == 0
	})

	// Every sample, grouped by window.
	type winKey struct {
		host  string
		start int64
	}
	latest := map[winKey]store.Sample{}
	revs := map[winKey][]int{}
	token := ""
	for {
		page, next, err := st.ListSamples(ctx, store.SampleFilter{PageSize: store.MaxPageSize, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page {
			k := winKey{x.Host, x.WindowStart}
			revs[k] = append(revs[k], x.Revision)
			if x.Revision > latest[k].Revision {
				latest[k] = x
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	multiRevisions := 0
	for k, rs := range revs {
		sort.Ints(rs)
		for i, r := range rs {
			if r != i+1 {
				t.Errorf("window %s/%d has revisions %v, want 1..n each once", k.host, k.start, rs)
				break
			}
		}
		if len(rs) > 1 {
			multiRevisions++
		}
	}
	// Where each flow is: (host, flow key) → windows whose latest sample holds it, and how often.
	where := map[string][]int64{}
	for k, x := range latest {
		enc, err := st.SampleFlows(ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		flows, err := flowpb.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(flows) != x.FlowCount {
			t.Errorf("sample %s: %d flows stored, flow count %d", x.ID, len(flows), x.FlowCount)
		}
		for _, f := range flows {
			key := k.host + "|" + f.GetSrcAddr() + ":" + f.GetSrcPort()
			where[key] = append(where[key], k.start)
		}
	}
	for key, ws := range where {
		if len(ws) > 1 {
			t.Errorf("flow %s is in %d samples (windows %v), want one", key, len(ws), ws)
		}
	}
	for _, s := range sensors {
		if s.addrs[0] == procs[victim].addr && s.breaks == 0 {
			t.Errorf("%s was on the killed collector but its stream never broke", s.name)
		}
	}
	totalAcked, dups, breaks := 0, 0, 0
	for _, s := range sensors {
		dups += s.dups
		breaks += s.breaks
		for seq, ws := range s.acked {
			for i := 0; i < s.perBatch(seq); i++ {
				key := s.name + "|" + s.flowKey(seq, i)
				got := where[key]
				if len(got) != 1 || got[0] != ws {
					t.Errorf("acked flow %s (batch %d, window %d) is in the latest samples of windows %v", key, seq, ws, got)
				}
				totalAcked++
			}
		}
		if len(s.acked) == 0 {
			t.Errorf("%s got no acknowledgement", s.name)
		}
	}
	if t.Failed() {
		return
	}
	// The silent sensors' last windows were open on the dead collector; another closed them after the
	// grace, and wrote their files.
	for _, s := range sensors {
		if !s.silent {
			continue
		}
		last := int64(0)
		for _, ws := range s.acked {
			last = max(last, ws)
		}
		x, ok := latest[winKey{s.name, last}]
		if !ok {
			t.Errorf("%s: no sample for its last window %d", s.name, last)
			continue
		}
		if due := time.Unix(last, 0).Add(window + grace); x.Created.Before(due.Add(-time.Second)) {
			t.Errorf("%s: window %d closed at %s, before its end + grace (%s)", s.name, last, x.Created, due)
		}
		found := ""
		for i, pr := range procs {
			if _, err := os.Stat(filepath.Join(pr.dir, "samples", x.FileName)); err == nil {
				found = fmt.Sprintf("c%d", i)
			}
		}
		if found == "" || found == fmt.Sprintf("c%d", victim) {
			t.Errorf("%s: sample file %s written by %q, want a surviving collector", s.name, x.FileName, found)
		}
	}
	t.Logf("%d samples over %d windows (%d with more than one revision), %d acked flows, %d stream breaks, %d duplicate notices",
		len(latest), len(revs), multiRevisions, totalAcked, breaks, dups)
}

func buildCollector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "collector")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/flowfleet/flowfleet/cmd/collector")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/collector: %v\n%s", err, out)
	}
	return bin
}

func multiFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitForLong(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// simSensor is a sensor's shipper reduced to the protocol: numbered batches of flows stamped with the
// current time, a window end after each window, a bounded set of unacknowledged items that is resent
// in order after a reconnect, and failover to the next collector address when a stream breaks.
type simSensor struct {
	t        *testing.T
	name     string
	index    int
	streamID string
	files    auth.Files
	addrs    []string
	window   time.Duration
	silent   bool // stops for good when its first stream breaks

	mu      sync.Mutex
	cur     int
	seq     uint64
	lastWin int64
	pending []simItem        // sent, not yet known to be done, in send order
	acked   map[uint64]int64 // acked seq → its window
	dups    int
	breaks  int
}

type simItem struct {
	seq    uint64 // 0 for a window end
	window int64
	msg    *flowfleetv1.IngestRequest
}

const simMaxInFlight = 64

func (s *simSensor) perBatch(seq uint64) int { return 20 + int(seq%3)*10 }

// flowKey identifies flow i of batch seq: src address and port.
func (s *simSensor) flowKey(seq uint64, i int) string {
	return fmt.Sprintf("10.%d.%d.%d:%d", s.index, seq>>8&0xff, seq&0xff, 1024+i)
}

func (s *simSensor) makeBatch(seq uint64, now time.Time) (*flowfleetv1.IngestRequest, int64) {
	w := int64(s.window / time.Second)
	ws := now.Unix() / w * w
	n := s.perBatch(seq)
	flows := make([]*flowfleetv1.Flow, 0, n)
	t := float64(now.UnixMicro()) / 1e6
	for i := 0; i < n; i++ {
		first := max(t-0.001*float64(n-i), float64(ws))
		f := flow.Flow{SrcAddr: fmt.Sprintf("10.%d.%d.%d", s.index, seq>>8&0xff, seq&0xff), SrcPort: fmt.Sprint(1024 + i),
			DstAddr: "192.0.2.10", DstPort: "443", Protocol: flow.ProtoTCP, SrcPkts: 2, SrcBytes: 120, DstPkts: 1,
			DstBytes: 60, First: first, Last: first + 0.0005, Name: "svc.example", NameSource: flow.SourcePassive}
		flows = append(flows, flowpb.ToProto(&f, ws))
	}
	return &flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: seq, Flows: flows}}}, ws
}

func windowEndMsg(ws int64, secs uint32) *flowfleetv1.IngestRequest {
	return &flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{
		WindowStart: ws, WindowSeconds: secs}}}
}

var errSimDone = errors.New("sensor finished")

func (s *simSensor) run(ctx context.Context, stop <-chan struct{}) {
	for ctx.Err() == nil {
		err := s.session(ctx, stop)
		if errors.Is(err, errSimDone) {
			return
		}
		s.mu.Lock()
		s.breaks++
		s.cur = (s.cur + 1) % len(s.addrs)
		s.mu.Unlock()
		if s.silent {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// onAck removes an acknowledged batch from the pending items, with the window ends sent before it
// (the collector handled those before acknowledging a later batch).
func (s *simSensor) onAck(seq uint64, dup bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dup {
		s.dups++
	}
	for i, it := range s.pending {
		if it.seq == seq {
			s.acked[seq] = it.window
			rest := s.pending[:0]
			for j, x := range s.pending {
				if j == i || (j < i && x.seq == 0) {
					continue
				}
				rest = append(rest, x)
			}
			s.pending = rest
			return
		}
	}
}

func (s *simSensor) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, it := range s.pending {
		if it.seq != 0 {
			n++
		}
	}
	return n
}

func (s *simSensor) session(ctx context.Context, stop <-chan struct{}) error {
	s.mu.Lock()
	addr := s.addrs[s.cur]
	s.mu.Unlock()
	creds, err := auth.NewClientCredentials(s.files, "127.0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		s.t.Error(err)
		return errSimDone
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		s.t.Error(err)
		return errSimDone
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := flowfleetv1.NewIngestServiceClient(conn).Ingest(sctx)
	if err != nil {
		return err
	}
	secs := uint32(s.window / time.Second)
	if err := stream.Send(&flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: &flowfleetv1.Hello{
		StreamId: s.streamID, SoftwareVersion: "multi-test/1", WindowSeconds: secs}}}); err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil {
		return err
	}
	broken := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				broken <- err
				return
			}
			if a := resp.GetAck(); a != nil {
				s.onAck(a.GetSeq(), false)
			} else if n := resp.GetNotice(); n != nil && n.GetCode() == flowfleetv1.NoticeCode_NOTICE_CODE_DUPLICATE_BATCH {
				s.onAck(n.GetSeq(), true)
			}
		}
	}()
	// Resend what is pending, in order.
	s.mu.Lock()
	resend := append([]simItem(nil), s.pending...)
	s.mu.Unlock()
	for _, it := range resend {
		if err := stream.Send(it.msg); err != nil {
			return err
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-broken:
			return err
		case <-stop:
			return s.finish(stream, broken, secs)
		case now := <-tick.C:
			if s.inFlight() >= simMaxInFlight {
				continue
			}
			s.mu.Lock()
			s.seq++
			msg, ws := s.makeBatch(s.seq, now)
			var items []simItem
			if s.lastWin != 0 && ws != s.lastWin {
				items = append(items, simItem{window: s.lastWin, msg: windowEndMsg(s.lastWin, secs)})
			}
			s.lastWin = ws
			items = append(items, simItem{seq: s.seq, window: ws, msg: msg})
			s.pending = append(s.pending, items...)
			s.mu.Unlock()
			for _, it := range items {
				if err := stream.Send(it.msg); err != nil {
					return err
				}
			}
		}
	}
}

// finish ends the last window, waits for every acknowledgement and closes the stream; the collector
// ends its side once it has handled everything, window end included.
func (s *simSensor) finish(stream flowfleetv1.IngestService_IngestClient, broken <-chan error, secs uint32) error {
	s.mu.Lock()
	if s.lastWin != 0 {
		it := simItem{window: s.lastWin, msg: windowEndMsg(s.lastWin, secs)}
		s.pending = append(s.pending, it)
		s.lastWin = 0
		s.mu.Unlock()
		if err := stream.Send(it.msg); err != nil {
			return err
		}
	} else {
		s.mu.Unlock()
	}
	deadline := time.After(20 * time.Second)
	for s.inFlight() > 0 {
		select {
		case err := <-broken:
			return err
		case <-deadline:
			s.t.Errorf("%s: batches still unacknowledged 20 s after the end", s.name)
			return errSimDone
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	select {
	case err := <-broken:
		if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
			return err
		}
	case <-time.After(20 * time.Second):
		s.t.Errorf("%s: the collector did not end the stream", s.name)
	}
	return errSimDone
}
