package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Method selects the capture mechanism.
type Method string

// The capture methods.
const (
	MethodPcap     Method = "pcap"
	MethodAFPacket Method = "afpacket"
)

// Any is the interface name that means every interface.
const Any = "any"

// Defaults.
const (
	DefaultSnaplen     = 65535
	DefaultBufferBytes = 16 << 20
)

// Config describes one capture source.
type Config struct {
	// Interface to capture on, or "any".
	Interface string
	// Method is pcap (default) or afpacket.
	Method Method
	// Snaplen is the most bytes kept of each packet; 0 means DefaultSnaplen.
	Snaplen int
	// Promisc puts the interface in promiscuous mode while capturing (not for "any").
	Promisc bool
	// Filter is a BPF expression (pcap-filter(7)) applied in the kernel; "" for every packet.
	Filter string
	// BufferBytes is the kernel buffer (pcap) or ring (afpacket) size; 0 means DefaultBufferBytes.
	BufferBytes int
	// Exclude lists interfaces whose packets an afpacket "any" source drops in its kernel filter.
	Exclude []string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Source is an open capture: Run reads packets into a queue until its context ends or the capture fails.
type Source interface {
	// Name is the interface name.
	Name() string
	// Run reads packets into q until ctx is done (it then returns nil) or reading fails. It closes the
	// source when it returns.
	Run(ctx context.Context, q *Queue) error
	// KernelDrops returns the packets the kernel or libpcap dropped for this source so far (the pcap
	// ps_drop statistic, or the TPACKET_V3 tp_drops counter), updated about once a second while Run runs.
	KernelDrops() uint64
	// Close releases the source; Run does it when it returns.
	Close()
}

// Open opens a capture source, applying its filter, so configuration errors (a missing interface, a
// bad filter, no permission) show at once.
func Open(cfg Config) (Source, error) {
	if cfg.Interface == "" {
		return nil, errors.New("capture: no interface given")
	}
	if cfg.Snaplen <= 0 {
		cfg.Snaplen = DefaultSnaplen
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.Method {
	case "", MethodPcap:
		return openPcap(cfg)
	case MethodAFPacket:
		return openAFPacket(cfg)
	}
	return nil, fmt.Errorf("capture: unknown method %q (want pcap or afpacket)", cfg.Method)
}

// ParseMethod checks a --capture value.
func ParseMethod(s string) (Method, error) {
	switch m := Method(strings.ToLower(strings.TrimSpace(s))); m {
	case "", MethodPcap:
		return MethodPcap, nil
	case MethodAFPacket:
		return m, nil
	}
	return "", fmt.Errorf("unknown capture method %q: want pcap or afpacket", s)
}

// Expand turns the --interface and --exclude-interface lists into the interfaces to open. "any" stays
// "any" (one source for every interface) unless interfaces are excluded and the method is pcap:
// libpcap's "any" device cannot tell interfaces apart in its filter, so it is then replaced by every
// interface present now, minus the excluded ones (interfaces created later are not captured; the
// afpacket method excludes in its kernel filter instead and keeps seeing new interfaces).
func Expand(ifaces, exclude []string, method Method) ([]string, error) {
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) && !slices.Contains(exclude, n) {
			out = append(out, n)
		}
	}
	for _, n := range ifaces {
		if n != Any {
			add(n)
			continue
		}
		if method == MethodAFPacket || len(exclude) == 0 {
			out = append(out[:0], Any) // "any" covers every other name
			return out, nil
		}
		all, err := net.Interfaces()
		if err != nil {
			return nil, fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifc := range all {
			if ifc.Flags&net.FlagUp != 0 {
				add(ifc.Name)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no interface left to capture on after exclusions")
	}
	return out, nil
}

// dltToLink maps a libpcap DLT_ value to the engine's link type.
func dltToLink(dlt int) (flow.LinkType, error) {
	switch dlt {
	case 0:
		return flow.LinkNull, nil
	case 1:
		return flow.LinkEthernet, nil
	case 12, 14, 101: // DLT_RAW is 12 on most systems, 14 on OpenBSD; LINKTYPE_RAW 101
		return flow.LinkRaw, nil
	case 108:
		return flow.LinkLoop, nil
	case 113:
		return flow.LinkLinuxSLL, nil
	case 228:
		return flow.LinkIPv4, nil
	case 229:
		return flow.LinkIPv6, nil
	case 276:
		return flow.LinkLinuxSLL2, nil
	}
	return 0, fmt.Errorf("unsupported data link type %d: the sensor reads Ethernet, Linux cooked, raw IP and loopback interfaces", dlt)
}
