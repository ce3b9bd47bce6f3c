package flow

import (
	"encoding/binary"
	"fmt"
)

// LinkType is a capture's link-layer header type (the LINKTYPE_* registry of pcap and pcapng).
type LinkType uint32

// The link types the engine reads.
const (
	LinkNull      LinkType = 0   // BSD loopback, host-order address family
	LinkEthernet  LinkType = 1   // Ethernet (R-PCAP-3)
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback, network-order address family
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1 (R-PCAP-3, R-DEC-10)
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// String names the link type.
func (l LinkType) String() string {
	switch l {
	case LinkNull:
		return "NULL (BSD loopback)"
	case LinkEthernet:
		return "EN10MB (Ethernet)"
	case LinkRaw:
		return "RAW (raw IP)"
	case LinkLoop:
		return "LOOP (OpenBSD loopback)"
	case LinkLinuxSLL:
		return "LINUX_SLL (Linux cooked v1)"
	case LinkIPv4:
		return "IPV4 (raw IPv4)"
	case LinkIPv6:
		return "IPV6 (raw IPv6)"
	case LinkLinuxSLL2:
		return "LINUX_SLL2 (Linux cooked v2)"
	}
	return fmt.Sprintf("LINKTYPE %d", uint32(l))
}

// CheckLinkType returns an error naming the link type when the engine cannot decode it. The reference
// decodes unknown link types as if they were Ethernet, which gives garbage; FlowFleet refuses them
// (R-PCAP-3, docs/conversion.md).
func CheckLinkType(l LinkType) error {
	switch l {
	case LinkNull, LinkEthernet, LinkRaw, LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2:
		return nil
	}
	return fmt.Errorf("unsupported link type %s: only Ethernet, Linux cooked (v1, v2), raw IP and loopback captures can be decoded", l)
}

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86DD
	etherVLAN = 0x8100
	etherQinQ = 0x88A8
	ether9100 = 0x9100
)

// frameKind says where the IP header of a normalised frame starts.
type frameKind uint8

const (
	kindNotIP    frameKind = iota
	kindEthernet           // IP at 14, EtherType at 12
	kindCooked             // Linux cooked v1: IP at 16, protocol at 14
)

// normalize applies the IP pre-filter of R-PCAP-3 and returns a frame laid out as the decoder expects:
// Ethernet and Linux cooked v1 frames unchanged, every other known link type rebuilt behind a synthetic
// 14-byte Ethernet header, so that every other rule applies unchanged. 802.1Q/QinQ tags are removed only
// when decodeVLAN is set (otherwise such frames are not IP frames).
func (e *Engine) normalize(link LinkType, data []byte) ([]byte, frameKind) {
	switch link {
	case LinkEthernet:
		if len(data) < 14 {
			return nil, kindNotIP
		}
		et := binary.BigEndian.Uint16(data[12:14])
		if et == etherIPv4 || et == etherIPv6 {
			return data, kindEthernet
		}
		if e.opts.DecodeVLAN && (et == etherVLAN || et == etherQinQ || et == ether9100) {
			return e.stripVLAN(data)
		}
		return nil, kindNotIP
	case LinkLinuxSLL:
		if len(data) < 16 {
			return nil, kindNotIP
		}
		et := binary.BigEndian.Uint16(data[14:16])
		if et == etherIPv4 || et == etherIPv6 {
			return data, kindCooked
		}
		return nil, kindNotIP
	case LinkLinuxSLL2:
		if len(data) < 20 {
			return nil, kindNotIP
		}
		return e.synth(binary.BigEndian.Uint16(data[0:2]), data[20:])
	case LinkRaw:
		if len(data) < 1 {
			return nil, kindNotIP
		}
		switch data[0] >> 4 {
		case 4:
			return e.synth(etherIPv4, data)
		case 6:
			return e.synth(etherIPv6, data)
		}
		return nil, kindNotIP
	case LinkIPv4:
		return e.synth(etherIPv4, data)
	case LinkIPv6:
		return e.synth(etherIPv6, data)
	case LinkNull, LinkLoop:
		if len(data) < 4 {
			return nil, kindNotIP
		}
		var af uint32
		if link == LinkLoop {
			af = binary.BigEndian.Uint32(data[:4])
		} else {
			af = binary.LittleEndian.Uint32(data[:4])
			if af > 0xFFFF {
				af = binary.BigEndian.Uint32(data[:4])
			}
		}
		switch af {
		case 2:
			return e.synth(etherIPv4, data[4:])
		case 10, 24, 28, 30:
			return e.synth(etherIPv6, data[4:])
		}
	}
	return nil, kindNotIP
}

// synth builds a synthetic Ethernet frame carrying payload with the given EtherType.
func (e *Engine) synth(ethertype uint16, payload []byte) ([]byte, frameKind) {
	if ethertype != etherIPv4 && ethertype != etherIPv6 {
		return nil, kindNotIP
	}
	n := 14 + len(payload)
	if cap(e.norm) < n {
		e.norm = make([]byte, n, n+256)
	}
	f := e.norm[:n]
	clear(f[:12])
	binary.BigEndian.PutUint16(f[12:14], ethertype)
	copy(f[14:], payload)
	return f, kindEthernet
}

// stripVLAN removes 802.1Q/QinQ tags from an Ethernet frame (the --decode-vlan extension).
func (e *Engine) stripVLAN(data []byte) ([]byte, frameKind) {
	off := 12
	for i := 0; i < 4 && off+4 <= len(data); i++ {
		et := binary.BigEndian.Uint16(data[off : off+2])
		if et != etherVLAN && et != etherQinQ && et != ether9100 {
			break
		}
		off += 4
	}
	if off+2 > len(data) {
		return nil, kindNotIP
	}
	et := binary.BigEndian.Uint16(data[off : off+2])
	if et != etherIPv4 && et != etherIPv6 {
		return nil, kindNotIP
	}
	n := 12 + len(data) - off
	if cap(e.norm) < n {
		e.norm = make([]byte, n, n+256)
	}
	f := e.norm[:n]
	copy(f[:12], data[:12])
	copy(f[12:], data[off:])
	return f, kindEthernet
}

// outerClass returns the pass of R-PCAP-5 a frame belongs to: 0 for outer UDP, 1 for outer TCP, 2 for
// everything else.
func outerClass(f []byte, kind frameKind) uint8 {
	base := 14
	if kind == kindCooked {
		base = 16
	}
	var et uint16
	if kind == kindCooked {
		et = u16(f, 14)
	} else {
		et = u16(f, 12)
	}
	off := base + 9
	if et == etherIPv6 {
		off = base + 6
	}
	if off >= len(f) {
		return 2
	}
	switch f[off] {
	case 17:
		return 0
	case 6:
		return 1
	}
	return 2
}

// isDNSFrame applies libpcap's "port 53" filter for the frame's link layer (R-DNS-1).
func isDNSFrame(f []byte, kind frameKind) bool {
	if kind != kindEthernet {
		return false // cooked captures yield no DNS (R-DNS-1)
	}
	var proto byte
	var ports int
	switch u16(f, 12) {
	case etherIPv4:
		if len(f) < 24 {
			return false
		}
		proto = f[23]
		if u16(f, 20)&0x1FFF != 0 {
			return false
		}
		ports = 14 + int(f[14]&0x0F)*4
	case etherIPv6:
		if len(f) < 21 {
			return false
		}
		proto = f[20]
		ports = 54
	default:
		return false
	}
	if proto != 6 && proto != 17 && proto != 132 {
		return false
	}
	if ports+4 > len(f) {
		// BPF evaluates "src port 53 or dst port 53" in order: a frame with the source port present and
		// equal to 53 matches even if the destination port is cut off.
		return ports+2 <= len(f) && u16(f, ports) == 53
	}
	return u16(f, ports) == 53 || u16(f, ports+2) == 53
}
