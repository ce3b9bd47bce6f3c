package sensor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
)

// Resolver looks up a host's addresses (net.DefaultResolver.LookupIPAddr fits through LookupHost).
type Resolver func(ctx context.Context, host string) ([]net.IP, error)

func defaultResolver(ctx context.Context, host string) ([]net.IP, error) {
	return net.DefaultResolver.LookupIP(ctx, "ip", host)
}

// CollectorFilter returns the BPF clause that keeps the sensor's own traffic to its collectors out of
// the capture: "not (host H and tcp port P)" for each address of each collector, joined with "and".
// Host names are resolved now (at start); one that does not resolve is logged and left out.
func CollectorFilter(ctx context.Context, addrs []string, resolve Resolver, log *slog.Logger) string {
	if resolve == nil {
		resolve = defaultResolver
	}
	var clauses []string
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		var ips []net.IP
		if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
			ips = []net.IP{ip}
		} else {
			ips, err = resolve(ctx, host)
			if err != nil {
				log.Warn("collector host does not resolve; its traffic is not excluded from the capture",
					slog.String("collector", a), slog.String("err", err.Error()))
				continue
			}
		}
		for _, ip := range ips {
			c := fmt.Sprintf("not (host %s and tcp port %s)", ip.String(), port)
			if !slices.Contains(clauses, c) {
				clauses = append(clauses, c)
			}
		}
	}
	return strings.Join(clauses, " and ")
}

// CombineFilter joins the user's filter and the sensor's own clause.
func CombineFilter(user, own string) string {
	user, own = strings.TrimSpace(user), strings.TrimSpace(own)
	switch {
	case user == "":
		return own
	case own == "":
		return user
	}
	return "(" + user + ") and " + own
}
