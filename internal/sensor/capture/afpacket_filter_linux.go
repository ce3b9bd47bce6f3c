//go:build linux

package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	afBlockSize = 1 << 20 // one TPACKET_V3 block; must hold the largest packet
	afFrameSize = 1 << 12
	dltRaw      = 12 // DLT_RAW on Linux: the filter is compiled for packets starting at the IP header
	arphrdLoop  = 772
	pktOutgoing = 4 // PACKET_OUTGOING
)

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
	user, err := compileUserFilter(cfg.Snaplen, cfg.Filter)
	if err != nil {
		return nil, fmt.Errorf("filter %q (compiled for raw IP packets: link-layer primitives are not available with --capture afpacket): %w", cfg.Filter, err)
	}
	var excluded []uint32
	if cfg.Interface == Any {
		for _, n := range cfg.Exclude {
			ifc, err := net.InterfaceByName(n)
			if err != nil {
				cfg.Logger.Warn("excluded interface not found; ignoring it", slog.String("interface", n), slog.String("err", err.Error()))
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
	return append(raw, user...), nil
}
