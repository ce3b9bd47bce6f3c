//go:build linux

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

	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

const (
	afBlockSize = 1 << 20 // one TPACKET_V3 block; must hold the largest packet
	afFrameSize = 1 << 12
	dltRaw      = 12 // DLT_RAW on Linux: the filter is compiled for packets starting at the IP header
	arphrdLoop  = 772
	pktOutgoing = 4 // PACKET_OUTGOING
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
	cfg.Logger.Info("capture opened", slog.String("interface", iface), slog.String("method", string(MethodAFPacket)),
		slog.String("link_type", flow.LinkRaw.String()), slog.Int("snaplen", cfg.Snaplen), slog.String("filter", cfg.Filter),
		slog.Int("ring_bytes", blocks*afBlockSize))
	return s, nil
}

// promiscuous opens a packet socket that holds a PACKET_MR_PROMISC membership on iface: the kernel keeps
// the interface promiscuous while the socket is open and undoes it when the socket closes (also when the
// process dies), unlike setting IFF_PROMISC.
func promiscuous(iface string) (int, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// afFilter builds the socket's classic BPF program: a prefix that rejects outgoing packets on loopback
// devices (each is seen again as incoming) and packets of excluded interfaces, then the user's filter
// compiled for raw IP with the snap length as its accept value.
func afFilter(cfg Config) ([]bpf.RawInstruction, error) {
	user, err := pcap.CompileBPFFilter(layers.LinkType(dltRaw), cfg.Snaplen, cfg.Filter)
	if err != nil {
		return nil, fmt.Errorf("filter %q (compiled for raw IP packets: link-layer primitives are not available with --capture afpacket): %w", cfg.Filter, err)
	}
	var excluded []uint32
	if cfg.Interface == Any {
		for _, n := range cfg.Exclude {
			ifc, err := net.InterfaceByName(n)
			if err != nil {
				cfg.Logger.Warn("excluded interface not found; ignoring it", slog.String("interface", n), slog.String("error", err.Error()))
				continue
			}
			excluded = append(excluded, uint32(ifc.Index))
		}
	}
	if len(excluded) > 200 {
		return nil, errors.New("too many excluded interfaces (at most 200)")
	}
	// Layout: 0 ld type; 1 jne OUTGOING → 4; 2 ld hatype; 3 jeq LOOPBACK → reject;
	// 4 ld ifindex; 5.. jeq idx → reject; ja +1; reject: ret 0; user program.
	n := 4 // instructions before "ja"
	if len(excluded) > 0 {
		n += 1 + len(excluded) // the ifindex load and one test per interface
	}
	reject := n + 1
	prefix := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: pktOutgoing, SkipTrue: 2},
		bpf.LoadExtension{Num: bpf.ExtLinkLayerType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: arphrdLoop, SkipTrue: uint8(reject - 4)},
	}
	if len(excluded) > 0 {
		prefix = append(prefix, bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
		for _, idx := range excluded {
			pos := len(prefix)
			prefix = append(prefix, bpf.JumpIf{Cond: bpf.JumpEqual, Val: idx, SkipTrue: uint8(reject - pos - 1)})
		}
	}
	prefix = append(prefix, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: 0})
	raw, err := bpf.Assemble(prefix)
	if err != nil {
		return nil, fmt.Errorf("assemble filter prefix: %w", err)
	}
	for _, in := range user {
		raw = append(raw, bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K})
	}
	return raw, nil
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
