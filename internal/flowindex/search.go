package flowindex

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// Bounds of a Filter (they come from untrusted clients).
const (
	MaxLimit    = 100_000
	maxName     = 1024
	maxCategory = 256
)

// Filter is what a search asks for, as a client writes it. Zero values match everything.
type Filter struct {
	Hosts      []string
	Src        string // IP or CIDR
	Dst        string // IP, CIDR, name, or "*." glob
	Port       int    // 0: any; -1 is not accepted (ICMP has no port: use Proto)
	Proto      string // tcp, udp, icmp, other
	NameSource string // original, passive, cache, session
	Category   string
	Since      time.Time
	Until      time.Time
	Limit      int // 0: MaxLimit
}

// FieldError is a bad Filter field; the service turns it into INVALID_ARGUMENT naming Field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func bad(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// compiled is a checked Filter: the store query and the checks left for each row.
type compiled struct {
	q        store.FlowIndexQuery
	src      *netip.Prefix
	glob     string // a "*." glob's name_rev prefix: a row matches when exactly one label follows
	proto    string
	source   string
	category string
	limit    int
}

var (
	protos  = map[string]bool{"tcp": true, "udp": true, "icmp": true, "other": true}
	sources = map[string]bool{"original": true, "passive": true, "cache": true, "session": true}
)

func compile(f Filter) (*compiled, error) {
	c := &compiled{q: store.FlowIndexQuery{DstPort: -1}, limit: f.Limit}
	if len(f.Hosts) > store.MaxIndexHosts {
		return nil, bad("hosts", "%d hosts, at most %d", len(f.Hosts), store.MaxIndexHosts)
	}
	for _, h := range f.Hosts {
		if h == "" || len(h) > 253 {
			return nil, bad("hosts", "a host name is 1 to 253 bytes")
		}
	}
	c.q.Hosts = f.Hosts
	if f.Src != "" {
		p, err := parsePrefix(f.Src)
		if err != nil {
			return nil, bad("src", "%q is not an IP address or CIDR", trunc(f.Src))
		}
		c.src = &p
	}
	if err := c.dst(f.Dst); err != nil {
		return nil, err
	}
	if f.Port < 0 || f.Port > 65535 {
		return nil, bad("port", "%d is not a port (1–65535)", f.Port)
	}
	if f.Port > 0 {
		c.q.DstPort = f.Port
	}
	if c.proto = strings.ToLower(f.Proto); c.proto != "" && !protos[c.proto] {
		return nil, bad("proto", "%q is not tcp, udp, icmp or other", trunc(f.Proto))
	}
	if c.source = strings.ToLower(f.NameSource); c.source != "" && !sources[c.source] {
		return nil, bad("name_source", "%q is not original, passive, cache or session", trunc(f.NameSource))
	}
	if len(f.Category) > maxCategory {
		return nil, bad("category", "longer than %d bytes", maxCategory)
	}
	c.category = f.Category
	if !f.Since.IsZero() {
		c.q.Since = f.Since.Unix()
	}
	if !f.Until.IsZero() {
		c.q.Until = f.Until.Unix()
		if c.q.Until <= c.q.Since {
			return nil, bad("until", "not after since")
		}
	}
	if f.Limit < 0 || f.Limit > MaxLimit {
		return nil, bad("limit", "%d is not within 0–%d", f.Limit, MaxLimit)
	}
	if c.limit == 0 {
		c.limit = MaxLimit
	}
	return c, nil
}

func (c *compiled) dst(d string) error {
	switch {
	case d == "":
		return nil
	case len(d) > maxName:
		return bad("dst", "longer than %d bytes", maxName)
	}
	if p, err := parsePrefix(d); err == nil {
		c.q.DstKeyLo, c.q.DstKeyHi = prefixRange(p)
		return nil
	}
	if strings.ContainsAny(d, "/:") && !strings.Contains(d, "*") {
		return bad("dst", "%q is not a valid IP address or CIDR", trunc(d))
	}
	name := strings.ToLower(strings.TrimSuffix(d, "."))
	rest, glob := strings.CutPrefix(name, "*.")
	if !validName(rest) {
		return bad("dst", "%q is not an IP, CIDR, name or *.name glob (\"*\" only as the whole first label)", trunc(d))
	}
	if glob {
		c.glob = store.ReverseName(rest)
		c.q.NameRev = c.glob
		return nil
	}
	c.q.DstName = name
	return nil
}

// validName: dot-separated non-empty labels of printable ASCII other than "*", "/" and space.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" {
			return false
		}
		for i := 0; i < len(l); i++ {
			if b := l[i]; b <= ' ' || b > '~' || b == '*' || b == '/' {
				return false
			}
		}
	}
	return true
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// match checks what the store query did not.
func (c *compiled) match(r store.FlowIndexRow) bool {
	if c.src != nil {
		a, err := netip.ParseAddr(KeyAddr(r.SrcKey))
		if err != nil || !c.src.Contains(a) {
			return false
		}
	}
	if c.glob != "" && strings.Count(strings.TrimPrefix(store.ReverseName(r.DstName), c.glob), ".") != 1 {
		return false
	}
	return (c.proto == "" || r.Protocol == c.proto) && (c.source == "" || r.NameSource == c.source) &&
		(c.category == "" || r.Category == c.category)
}

// Result is one row of a search: a sample's flows to one destination key.
type Result struct {
	store.FlowIndexRow
	SrcAddr string
	DstAddr string
}

// Search calls fn with each matching row, newest window first, at most the filter's limit of them.
// It says whether the limit cut the results.
func Search(ctx context.Context, st store.FlowIndex, f Filter, fn func(Result) error) (cut bool, err error) {
	c, err := compile(f)
	if err != nil {
		return false, err
	}
	n := 0
	err = st.SearchFlowIndex(ctx, c.q, func(r store.FlowIndexRow) error {
		if !c.match(r) {
			return nil
		}
		if n == c.limit {
			cut = true
			return store.ErrStopSearch
		}
		n++
		return fn(Result{FlowIndexRow: r, SrcAddr: KeyAddr(r.SrcKey), DstAddr: KeyAddr(r.DstKey)})
	})
	return cut, err
}

// Group is one line of Top.
type Group struct {
	Key     string
	Hosts   int
	Flows   int64
	Packets int64
	Bytes   int64
}

// maxGroups bounds Top's groups in memory.
const maxGroups = 200_000

// ErrTooManyGroups: a Top found more groups than it keeps; narrow the filter.
var ErrTooManyGroups = errors.New("more than 200000 groups: narrow the filter")

// Top sums the matching rows by one of dst, dst-name, host, port, category and returns the limit
// groups with the most flows (ties by key).
func Top(ctx context.Context, st store.FlowIndex, f Filter, by string, limit int) ([]Group, error) {
	key, ok := map[string]func(r store.FlowIndexRow) string{
		"dst":      func(r store.FlowIndexRow) string { return KeyAddr(r.DstKey) },
		"dst-name": func(r store.FlowIndexRow) string { return r.DstName },
		"host":     func(r store.FlowIndexRow) string { return r.Host },
		"port":     func(r store.FlowIndexRow) string { return strconv.Itoa(r.DstPort) },
		"category": func(r store.FlowIndexRow) string { return r.Category },
	}[by]
	if !ok {
		return nil, bad("by", "%q is not dst, dst-name, host, port or category", trunc(by))
	}
	if limit < 1 || limit > 10_000 {
		return nil, bad("limit", "%d is not within 1–10000", limit)
	}
	f.Limit = 0
	c, err := compile(f)
	if err != nil {
		return nil, err
	}
	groups := map[string]*Group{}
	hosts := map[[2]string]bool{}
	err = st.SearchFlowIndex(ctx, c.q, func(r store.FlowIndexRow) error {
		if !c.match(r) {
			return nil
		}
		k := key(r)
		g := groups[k]
		if g == nil {
			if len(groups) == maxGroups {
				return ErrTooManyGroups
			}
			g = &Group{Key: k}
			groups[k] = g
		}
		if hk := [2]string{k, r.Host}; !hosts[hk] && len(hosts) < 4*maxGroups {
			hosts[hk] = true
			g.Hosts++
		}
		g.Flows += r.Flows
		g.Packets = satAdd(g.Packets, r.Packets)
		g.Bytes = satAdd(g.Bytes, r.Bytes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sortGroups(out)
	return out[:min(limit, len(out))], nil
}

func sortGroups(gs []Group) {
	slices.SortFunc(gs, func(a, b Group) int {
		switch {
		case a.Flows != b.Flows:
			if a.Flows > b.Flows {
				return -1
			}
			return 1
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
}
