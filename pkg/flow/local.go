package flow

import (
	"net/netip"
	"strings"
)

// localPrefixes is the fixed list of R-LOC-1: private, multicast, loopback and link-local by the 2022-era
// Python ipaddress rules.
var localPrefixes = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/29",
		"192.0.0.170/31", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
		"::1/128", "::/128", "::ffff:0:0/96", "100::/64", "2001::/23", "2001:2::/48", "2001:db8::/32",
		"2001:10::/28", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// IsLocal reports whether a is local by R-LOC-1. IPv4-mapped IPv6 addresses are judged as IPv6.
func IsLocal(a netip.Addr) bool {
	if a.Is4() {
		v := a.As4()
		switch {
		case v[0] == 0, v[0] == 10, v[0] == 127, v[0] >= 224:
			// 0/8, 10/8, 127/8, 224/4, 240/4 and 255.255.255.255 (inside 240/4)
			return true
		case v[0] == 169 && v[1] == 254, v[0] == 172 && v[1]&0xF0 == 16, v[0] == 192 && v[1] == 168:
			return true
		case v[0] == 198 && v[1]&0xFE == 18:
			return true
		case v[0] == 192 && v[1] == 0 && v[2] == 0 && (v[3] < 8 || v[3]&0xFE == 170):
			return true
		case v[0] == 192 && v[1] == 0 && v[2] == 2, v[0] == 198 && v[1] == 51 && v[2] == 100,
			v[0] == 203 && v[1] == 0 && v[2] == 113:
			return true
		}
		return false
	}
	for _, p := range localPrefixes {
		if p.Addr().Is6() && p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseAddr parses address text as Python's ipaddress.ip_address does for the inputs the reference reads:
// dotted IPv4 without leading zeros or IPv6; zone suffixes are refused (R-ERR-6).
func ParseAddr(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a, true
}

// AddrText writes an address as Python's ipaddress prints it (R-OUT-7): Go's form, except that
// IPv4-mapped IPv6 addresses are written in hex (::ffff:102:304).
func AddrText(a netip.Addr) string {
	if a.Is4In6() {
		var buf [24]byte
		return string(AppendAddrText(buf[:0], a))
	}
	return a.String()
}

// AppendAddrText appends AddrText(a) to b.
func AppendAddrText(b []byte, a netip.Addr) []byte {
	if a.Is4In6() {
		v := a.As16()
		b = append(b, "::ffff:"...)
		b = appendHex16(b, uint16(v[12])<<8|uint16(v[13]))
		b = append(b, ':')
		return appendHex16(b, uint16(v[14])<<8|uint16(v[15]))
	}
	return a.AppendTo(b)
}

func appendHex16(b []byte, v uint16) []byte {
	const digits = "0123456789abcdef"
	if v == 0 {
		return append(b, '0')
	}
	var buf [4]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = digits[v&0xF]
		v >>= 4
	}
	return append(b, buf[i:]...)
}
