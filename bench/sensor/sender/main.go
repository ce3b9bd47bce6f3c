//go:build linux

// Command sender replays a pcap capture onto one interface through an AF_PACKET raw socket, at a given
// packet rate, for the sensor benchmark (bench/sensor). The whole capture is loaded into memory first;
// frames are sent in batches with sendmmsg(2) on a socket that bypasses the qdisc, paced against the
// wall clock so the average rate is the one asked for. It loops over the capture until -duration is up,
// or sends it -loops times. When it starts sending it prints "sending" on a line of its own, and at the
// end one JSON line: {"sent":…,"seconds":…,"rate":…,"errors":…,"cpu":…}.
//
// Run it inside the sending network namespace (the bench does it with ip netns exec):
//
//	sender -i ffbs-data -f big.pcap -rate 200000 -duration 10s
//	sender -i ffbs-data -f flows.pcap -rate 100000 -loops 1
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

func main() {
	iface := flag.String("i", "", "interface to send on (required)")
	file := flag.String("f", "", "pcap capture to replay (Ethernet frames; required)")
	rate := flag.Float64("rate", 100000, "packets per second (0: as fast as possible)")
	duration := flag.Duration("duration", 10*time.Second, "how long to send, looping over the capture (with -loops 0)")
	loops := flag.Int("loops", 0, "send the capture this many times instead of for -duration")
	batch := flag.Int("batch", 64, "frames per sendmmsg call at most")
	flag.Parse()
	if *iface == "" || *file == "" || *batch < 1 {
		flag.Usage()
		os.Exit(2)
	}
	frames, err := load(*file)
	if err != nil {
		fail(err)
	}
	if len(frames.iov) == 0 {
		fail(fmt.Errorf("%s: no frames", *file))
	}
	fd, err := open(*iface)
	if err != nil {
		fail(err)
	}
	res := send(fd, frames, *rate, *duration, *loops, *batch)
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sender:", err)
	os.Exit(1)
}

// frames holds the capture in one buffer and a prebuilt sendmmsg header per frame.
type frames struct {
	buf  []byte
	iov  []unix.Iovec
	msgs []unix.Mmsghdr
}

func load(path string) (*frames, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.LinkType() != 1 {
		return nil, fmt.Errorf("%s: link type %d, want Ethernet (1)", path, r.LinkType())
	}
	st, _ := f.Stat()
	fr := &frames{buf: make([]byte, 0, st.Size())}
	var offs [][2]int
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		offs = append(offs, [2]int{len(fr.buf), len(data)})
		fr.buf = append(fr.buf, data...)
	}
	fr.iov = make([]unix.Iovec, len(offs))
	fr.msgs = make([]unix.Mmsghdr, len(offs))
	for i, o := range offs {
		fr.iov[i].Base = &fr.buf[o[0]]
		fr.iov[i].SetLen(o[1])
		fr.msgs[i].Hdr.Iov = &fr.iov[i]
		fr.msgs[i].Hdr.SetIovlen(1)
	}
	return fr, nil
}

// open returns a raw packet socket bound to iface that receives nothing (protocol 0) and hands frames
// straight to the driver (PACKET_QDISC_BYPASS).
func open(iface string) (int, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
		return -1, fmt.Errorf("bind %s: %w", iface, err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<20)
	return fd, nil
}

type result struct {
	Sent    int64   `json:"sent"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	Errors  int64   `json:"errors"`
	CPU     float64 `json:"cpu"` // CPU seconds (user+system) the sender used while sending
}

func cpuNow() float64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func send(fd int, fr *frames, rate float64, duration time.Duration, loops, batch int) result {
	n := len(fr.msgs)
	var total int64 = -1 // packets to send; -1 for "until the duration is up"
	if loops > 0 {
		total = int64(loops) * int64(n)
	}
	fmt.Println("sending")
	cpu0 := cpuNow()
	start := time.Now()
	deadline := start.Add(duration)
	var sent, errs int64
	pos := 0
	for total < 0 || sent < total {
		now := time.Now()
		if total < 0 && !now.Before(deadline) {
			break
		}
		want := batch
		if rate > 0 {
			due := int64(rate*now.Sub(start).Seconds()) + 1
			if ahead := sent - due; ahead >= 0 {
				// Ahead of schedule: sleep until the next frame is due (at least a little, so the
				// timer's granularity does not turn into a busy loop).
				time.Sleep(max(time.Duration(float64(ahead+1)/rate*float64(time.Second)), 20*time.Microsecond))
				continue
			}
			want = int(min(int64(batch), due-sent))
		}
		if total >= 0 {
			want = int(min(int64(want), total-sent))
		}
		want = min(want, n-pos)
		k, err := sendmmsg(fd, fr.msgs[pos:pos+want])
		if err != nil {
			errs++
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				runtime.Gosched()
				continue
			}
			fail(fmt.Errorf("sendmmsg: %w", err))
		}
		sent += int64(k)
		pos += k
		if pos == n {
			pos = 0
		}
	}
	secs := time.Since(start).Seconds()
	return result{Sent: sent, Seconds: secs, Rate: float64(sent) / secs, Errors: errs, CPU: cpuNow() - cpu0}
}

func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	runtime.KeepAlive(msgs)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}
