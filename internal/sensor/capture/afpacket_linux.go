//go:build linux && cgo

// The AF_PACKET source on gopacket's TPACKET_V3 ring, which is cgo; afpacket_static_linux.go is the
// cgo-free one. Both use afFilter (afpacket_filter_linux.go).

package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

type afSource struct {
	name    string
	tp      *afpacket.TPacket
	promisc int // fd of the socket holding the promiscuous membership, or -1
	log     *slog.Logger
	drops   atomic.Uint64
	packets atomic.Uint64
	once    sync.Once
	// filtered is when the BPF program was attached: earlier frames were never filtered.
	filtered time.Time
}

func openAFPacket(cfg Config) (Source, error) {
	iface := cfg.Interface
	bind := iface
	if iface == Any {
		bind = "" // all interfaces
	}
	prog, err := afFilter(cfg)
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", iface, err)
	}
	blocks := cfg.BufferBytes / afBlockSize
	if blocks < 2 {
		blocks = 2
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(bind),
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.SocketDgram,
		afpacket.OptFrameSize(afFrameSize),
		afpacket.OptBlockSize(afBlockSize),
		afpacket.OptNumBlocks(blocks),
		afpacket.OptBlockTimeout(50*time.Millisecond),
		afpacket.OptPollTimeout(readTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("capture %s: afpacket: %w", iface, err)
	}
	if err := tp.SetBPF(prog); err != nil {
		tp.Close()
		return nil, fmt.Errorf("capture %s: attach filter: %w", iface, err)
	}
	// Frames the socket took before the filter was attached passed no filter at all (libpcap drains them
	// for the same reason); they are recognised by their time and dropped in Run.
	s := &afSource{name: iface, tp: tp, promisc: -1, log: cfg.Logger, filtered: time.Now()}
	if cfg.Promisc && iface != Any {
		fd, err := promiscuous(iface)
		if err != nil {
			tp.Close()
			return nil, fmt.Errorf("capture %s: promiscuous mode: %w", iface, err)
		}
		s.promisc = fd
	}
	cfg.Logger.Info("capture opened", slog.String("interface", iface), slog.String("capture", string(MethodAFPacket)),
		slog.String("link_type", flow.LinkRaw.String()), slog.Int("snaplen", cfg.Snaplen), slog.String("filter", cfg.Filter),
		slog.Int("ring_bytes", blocks*afBlockSize))
	return s, nil
}

func (s *afSource) Name() string        { return s.name }
func (s *afSource) KernelDrops() uint64 { return s.drops.Load() }

func (s *afSource) Close() {
	s.once.Do(func() {
		s.tp.Close()
		if s.promisc >= 0 {
			unix.Close(s.promisc)
		}
	})
}

func (s *afSource) pollStats() {
	_, v3, err := s.tp.SocketStats()
	if err != nil {
		return
	}
	s.drops.Store(uint64(v3.Drops()))
}

func (s *afSource) Run(ctx context.Context, q *Queue) error {
	defer s.Close()
	defer s.pollStats()
	next := time.Now().Add(time.Second)
	for {
		if ctx.Err() != nil {
			return nil
		}
		data, ci, err := s.tp.ZeroCopyReadPacketData()
		if now := time.Now(); now.After(next) {
			s.pollStats()
			next = now.Add(time.Second)
		}
		switch {
		case err == nil:
		case errors.Is(err, afpacket.ErrTimeout):
			continue
		case errors.Is(err, unix.EINTR):
			continue
		default:
			if errors.Is(err, afpacket.ErrPoll) {
				// POLLERR: the interface went away or the socket failed.
				return fmt.Errorf("capture %s: poll error (interface down or removed?): %w", s.name, err)
			}
			return fmt.Errorf("capture %s: read: %w", s.name, os.NewSyscallError("read", err))
		}
		if ci.Timestamp.Before(s.filtered) {
			continue
		}
		s.packets.Add(1)
		q.Offer(NewPacket(flow.LinkRaw, ci.Timestamp, append([]byte(nil), data...)))
	}
}
