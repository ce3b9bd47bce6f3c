//go:build linux

package capture_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/capture"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/internal/sensor/window"
)

// helperEnv makes the test binary, re-executed inside a namespace, act as a traffic generator.
const helperEnv = "FLOWFLEET_CAPTURE_TEST_HELPER"

// TestCaptureHelperProcess is not a test: run with FLOWFLEET_CAPTURE_TEST_HELPER=<ip>, it sends UDP
// datagrams to <ip>:7777 (and one to :7778, which the capture filter leaves out) and makes a TCP
// connection to <ip>:8080, then exits.
func TestCaptureHelperProcess(t *testing.T) {
	target := os.Getenv(helperEnv)
	if target == "" {
		t.Skip("helper process only")
	}
	for _, port := range []string{"7777", "7777", "7777", "7778"} {
		c, err := net.Dial("udp", net.JoinHostPort(target, port))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_, _ = c.Write([]byte("flowfleet capture test datagram"))
		c.Close()
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(target, "8080"), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	_, _ = c.Write([]byte("hello from the other namespace"))
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Read(buf)
	c.Close()
	os.Exit(0)
}

var nsSeq atomic.Int32

// netnsPair creates namespaces a and b joined by a veth pair (a: 10.213.N.1/24 on "va", b: .2 on "vb"),
// removed at cleanup. It skips the test when not root or when `ip netns` fails.
func netnsPair(t *testing.T) (a, b, ipA, ipB string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("capture integration test needs root (network namespaces, raw sockets); run as root to include it")
	}
	n := nsSeq.Add(1)
	a = fmt.Sprintf("ffsa-%d-%d", os.Getpid(), n)
	b = fmt.Sprintf("ffsb-%d-%d", os.Getpid(), n)
	ipA, ipB = fmt.Sprintf("10.213.%d.1", n), fmt.Sprintf("10.213.%d.2", n)
	run := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", a); err != nil {
		t.Skipf("network namespaces unavailable (%v); skipping the capture integration test", err)
	}
	t.Cleanup(func() { _ = run("netns", "del", a) })
	if err := run("netns", "add", b); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}
	t.Cleanup(func() { _ = run("netns", "del", b) })
	for _, cmd := range [][]string{
		{"link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b},
		{"-n", a, "addr", "add", ipA + "/24", "dev", "va"},
		{"-n", b, "addr", "add", ipB + "/24", "dev", "vb"},
		{"-n", a, "link", "set", "va", "up"},
		{"-n", b, "link", "set", "vb", "up"},
		{"-n", a, "link", "set", "lo", "up"},
		{"-n", b, "link", "set", "lo", "up"},
	} {
		if err := run(cmd...); err != nil {
			t.Skipf("cannot set up the veth pair: %v", err)
		}
	}
	return a, b, ipA, ipB
}

// inNetns runs fn on an OS thread switched into namespace ns; sockets fn creates stay in ns.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			return // leave the thread locked: it dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

type recorder struct {
	flows []*flowfleetv1.Flow
}

func (r *recorder) Batch(f []*flowfleetv1.Flow)      { r.flows = append(r.flows, f...) }
func (r *recorder) WindowEnd(*flowfleetv1.WindowEnd) {}

func captureTest(t *testing.T, method capture.Method, iface string) {
	captureTestExclude(t, method, iface, nil)
}

func captureTestExclude(t *testing.T, method capture.Method, iface string, exclude []string) {
	nsA, nsB, ipA, ipB := netnsPair(t)
	filter := "udp port 7777 or tcp port 8080"
	var src capture.Source
	var lis net.Listener
	var openErr error
	inNetns(t, nsA, func() {
		ifaces, err := capture.Expand([]string{iface}, exclude, method)
		if err != nil {
			openErr = err
			return
		}
		src, openErr = capture.Open(capture.Config{Interface: ifaces[0], Method: method, Filter: filter, Exclude: exclude,
			Logger: sensortest.QuietLogger()})
		if openErr != nil {
			return
		}
		lis, openErr = net.Listen("tcp", net.JoinHostPort(ipA, "8080"))
	})
	if openErr != nil {
		t.Fatal(openErr)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			_, _ = c.Write(buf[:n]) // echo: packets in both directions
			c.Close()
		}
	}()

	q := capture.NewQueue(0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() { defer wg.Done(); runErr = src.Run(ctx, q) }()

	time.Sleep(200 * time.Millisecond) // the socket is open already; let Run start reading
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", nsB, self, "-test.run=^TestCaptureHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+ipA)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("traffic helper in %s: %v\n%s", nsB, err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	if len(exclude) > 0 {
		deadline = time.Now().Add(500 * time.Millisecond)
	}
	for q.Accepted() < 8 && time.Now().Before(deadline) { // 3 datagrams + the TCP exchange
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("run: %v", runErr)
	}

	rec := &recorder{}
	w := window.New(window.Options{Window: 300 * time.Second, Logger: sensortest.QuietLogger()}, rec)
	defer w.Close()
	n := 0
	for len(q.C()) > 0 {
		p := <-q.C()
		q.Done(p)
		w.Packet(p.Link, p.Sec, p.Usec, p.Data)
		n++
	}
	w.Flush()
	t.Logf("%s on %s: %d packets, %d flows, kernel drops %d", method, iface, n, len(rec.flows), src.KernelDrops())
	if len(exclude) > 0 {
		if n != 0 {
			t.Errorf("%d packets captured from excluded interfaces %v", n, exclude)
		}
		return
	}
	var udp, tcp *flowfleetv1.Flow
	for _, f := range rec.flows {
		t.Logf("flow %s:%s → %s:%s %s pkts %d/%d bytes %d/%d", f.GetSrcAddr(), f.GetSrcPort(), f.GetDstAddr(), f.GetDstPort(),
			f.GetProtocol(), f.GetSrcPkts(), f.GetDstPkts(), f.GetSrcBytes(), f.GetDstBytes())
		switch {
		case f.GetDstPort() == "7778":
			t.Errorf("the capture filter let port 7778 through")
		case f.GetProtocol() == flowfleetv1.Protocol_PROTOCOL_UDP && f.GetDstPort() == "7777" && f.GetSrcAddr() == ipB && f.GetDstAddr() == ipA:
			udp = f
		case f.GetProtocol() == flowfleetv1.Protocol_PROTOCOL_TCP && f.GetDstPort() == "8080" && f.GetSrcAddr() == ipB && f.GetDstAddr() == ipA:
			tcp = f
		}
	}
	if udp == nil || udp.GetSrcPkts() != 1 || udp.GetSrcBytes() != int64(len("flowfleet capture test datagram")) {
		t.Errorf("UDP flow %s → %s:7777 missing or wrong: %v", ipB, ipA, udp)
	}
	// The handshake, data and teardown in both directions: outgoing packets of the capturing side
	// (its SYN-ACK, echo and ACKs) must be there too.
	if tcp == nil || tcp.GetSrcPkts() < 3 || tcp.GetDstPkts() < 2 || tcp.GetSrcBytes() != int64(len("hello from the other namespace")) ||
		tcp.GetDstBytes() != int64(len("hello from the other namespace")) {
		t.Errorf("TCP flow %s → %s:8080 missing or incomplete: %v", ipB, ipA, tcp)
	}
}

func TestCaptureNetnsPcapInterface(t *testing.T)     { captureTest(t, capture.MethodPcap, "va") }
func TestCaptureNetnsPcapAny(t *testing.T)           { captureTest(t, capture.MethodPcap, capture.Any) }
func TestCaptureNetnsAFPacketInterface(t *testing.T) { captureTest(t, capture.MethodAFPacket, "va") }
func TestCaptureNetnsAFPacketAny(t *testing.T)       { captureTest(t, capture.MethodAFPacket, capture.Any) }

func TestCaptureNetnsAFPacketAnyExcluded(t *testing.T) {
	captureTestExclude(t, capture.MethodAFPacket, capture.Any, []string{"va"})
}
