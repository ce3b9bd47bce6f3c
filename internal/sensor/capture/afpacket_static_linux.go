//go:build linux && !cgo

package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// afSource, cgo-free: a plain AF_PACKET datagram socket read with one recvfrom per packet (gopacket's
// TPACKET_V3 ring needs cgo). The same kernel filter as the ring source (afFilter) is attached before the
// socket is bound, so no packet is ever read unfiltered; the capture time is the time of the read.
type afSource struct {
	name    string
	fd      int
	promisc int // fd of the socket holding the promiscuous membership, or -1
	snaplen int
	log     *slog.Logger
	drops   atomic.Uint64
	packets atomic.Uint64
	once    sync.Once
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openAFPacket(cfg Config) (Source, error) {
	iface := cfg.Interface
	prog, err := afFilter(cfg)
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", iface, err)
	}
	ifindex := 0 // all interfaces
	if iface != Any {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return nil, fmt.Errorf("capture %s: %w", iface, err)
		}
		ifindex = ifc.Index
	}
	// Protocol 0: the socket receives nothing until it is bound, after the filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("capture %s: afpacket socket: %w", iface, err)
	}
	s := &afSource{name: iface, fd: fd, promisc: -1, snaplen: cfg.Snaplen, log: cfg.Logger}
	fail := func(what string, err error) (Source, error) {
		s.Close()
		return nil, fmt.Errorf("capture %s: %s: %w", iface, what, err)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fail("attach filter", err)
	}
	// The receive buffer plays the ring's part; past net.core.rmem_max only with CAP_NET_ADMIN.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.BufferBytes); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.BufferBytes)
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("receive timeout", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	if cfg.Promisc && iface != Any {
		if s.promisc, err = promiscuous(iface); err != nil {
			return fail("promiscuous mode", err)
		}
	}
	cfg.Logger.Info("capture opened", slog.String("interface", iface), slog.String("capture", string(MethodAFPacket)),
		slog.String("link_type", flow.LinkRaw.String()), slog.Int("snaplen", cfg.Snaplen), slog.String("filter", cfg.Filter),
		slog.Int("buffer_bytes", cfg.BufferBytes), slog.Bool("ring", false))
	return s, nil
}

func (s *afSource) Name() string        { return s.name }
func (s *afSource) KernelDrops() uint64 { return s.drops.Load() }

func (s *afSource) Close() {
	s.once.Do(func() {
		unix.Close(s.fd)
		if s.promisc >= 0 {
			unix.Close(s.promisc)
		}
	})
}

// pollStats adds the drops since the last call (PACKET_STATISTICS resets the counters it returns).
func (s *afSource) pollStats() {
	st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return
	}
	s.drops.Add(uint64(st.Drops))
}

func (s *afSource) Run(ctx context.Context, q *Queue) error {
	defer s.Close()
	defer s.pollStats()
	buf := make([]byte, 1<<16) // the largest IP packet; the filter already cut it to the snap length
	next := time.Now().Add(time.Second)
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		now := time.Now()
		if now.After(next) {
			s.pollStats()
			next = now.Add(time.Second)
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENETDOWN), errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
			return fmt.Errorf("capture %s: interface down or removed: %w", s.name, err)
		default:
			return fmt.Errorf("capture %s: read: %w", s.name, os.NewSyscallError("recvfrom", err))
		}
		if n > s.snaplen {
			n = s.snaplen
		}
		s.packets.Add(1)
		q.Offer(NewPacket(flow.LinkRaw, now, append([]byte(nil), buf[:n]...)))
	}
}
