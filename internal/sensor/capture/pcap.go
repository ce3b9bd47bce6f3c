//go:build cgo

// libpcap is C: the pcap method exists only in cgo builds (pcap_nocgo.go is the other).

package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/pcap"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// readTimeout bounds a blocking read, so Run notices its context ending.
const readTimeout = 250 * time.Millisecond

type pcapSource struct {
	name    string
	h       *pcap.Handle
	link    flow.LinkType // the handle's link type
	cooked  bool          // rewrite Linux cooked frames into Ethernet layout
	log     *slog.Logger
	drops   atomic.Uint64
	packets atomic.Uint64
	once    sync.Once
}

func openPcap(cfg Config) (Source, error) {
	in, err := pcap.NewInactiveHandle(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", cfg.Interface, err)
	}
	defer in.CleanUp()
	for _, step := range []func() error{
		func() error { return in.SetSnapLen(cfg.Snaplen) },
		func() error { return in.SetPromisc(cfg.Promisc && cfg.Interface != Any) },
		func() error { return in.SetTimeout(readTimeout) },
		func() error { return in.SetBufferSize(cfg.BufferBytes) },
	} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("capture %s: %w", cfg.Interface, err)
		}
	}
	h, err := in.Activate()
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", cfg.Interface, err)
	}
	link, err := dltToLink(int(h.LinkType()))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("capture %s: %w", cfg.Interface, err)
	}
	if cfg.Filter != "" {
		if err := h.SetBPFFilter(cfg.Filter); err != nil {
			h.Close()
			return nil, fmt.Errorf("capture %s: filter %q: %w", cfg.Interface, cfg.Filter, err)
		}
	}
	s := &pcapSource{name: cfg.Interface, h: h, link: link, log: cfg.Logger}
	s.cooked = link == flow.LinkLinuxSLL || link == flow.LinkLinuxSLL2
	cfg.Logger.Info("capture opened", slog.String("interface", cfg.Interface), slog.String("capture", string(MethodPcap)),
		slog.String("link_type", link.String()), slog.Int("snaplen", cfg.Snaplen), slog.String("filter", cfg.Filter))
	return s, nil
}

func (s *pcapSource) Name() string        { return s.name }
func (s *pcapSource) KernelDrops() uint64 { return s.drops.Load() }

func (s *pcapSource) Close() { s.once.Do(s.h.Close) }

func (s *pcapSource) pollStats() {
	st, err := s.h.Stats()
	if err != nil {
		return
	}
	if st.PacketsDropped > 0 {
		s.drops.Store(uint64(st.PacketsDropped))
	}
}

func (s *pcapSource) Run(ctx context.Context, q *Queue) error {
	defer s.Close()
	defer s.pollStats()
	next := time.Now().Add(time.Second)
	for {
		if ctx.Err() != nil {
			return nil
		}
		data, ci, err := s.h.ZeroCopyReadPacketData()
		if now := time.Now(); now.After(next) {
			s.pollStats()
			next = now.Add(time.Second)
		}
		switch {
		case err == nil:
		case errors.Is(err, pcap.NextErrorTimeoutExpired):
			continue
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("capture %s: read: %w", s.name, err)
		}
		var p Packet
		if s.cooked {
			buf := CookedToEthernet(s.link, data)
			if buf == nil {
				continue
			}
			p = NewPacket(flow.LinkEthernet, ci.Timestamp, buf)
		} else {
			p = NewPacket(s.link, ci.Timestamp, append([]byte(nil), data...))
		}
		s.packets.Add(1)
		q.Offer(p)
	}
}
