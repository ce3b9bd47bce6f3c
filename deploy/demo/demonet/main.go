// Command demonet plays the rest of the network for the FlowFleet demo (scripts/demo.sh), inside the
// network namespaces the demo creates: "serve" answers DNS, HTTP and TLS; "traffic" resolves names with
// that DNS server and talks to the answers, so that the sensors see named flows.
//
//	demonet serve -dns 10.99.0.2:53 -web 100.64.0.1 -names web.demo.test=100.64.0.1,api.demo.test=100.64.0.2
//	demonet traffic -dns 10.99.0.2:53 -names web.demo.test,api.demo.test -rounds 3
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demonet serve|traffic [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "traffic":
		err = traffic(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demonet:", err)
		os.Exit(1)
	}
}

func parseNames(s string) map[string]net.IP {
	m := map[string]net.IP{}
	for _, kv := range strings.Split(s, ",") {
		if name, ip, ok := strings.Cut(kv, "="); ok {
			m[strings.ToLower(strings.TrimSuffix(name, "."))] = net.ParseIP(ip).To4()
		}
	}
	return m
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dnsAddr := fs.String("dns", "10.99.0.2:53", "DNS listen address")
	web := fs.String("web", "100.64.0.1,100.64.0.2", "addresses to serve HTTP (:80) and TLS (:443) on")
	names := fs.String("names", "", "name=ip,... answered by the DNS server")
	_ = fs.Parse(args)
	table := parseNames(*names)
	pc, err := net.ListenPacket("udp", *dnsAddr)
	if err != nil {
		return err
	}
	go dnsLoop(pc, table)
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the FlowFleet demo (%s)\n", r.Host)
	})
	for _, ip := range strings.Split(*web, ",") {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "80"))
		if err != nil {
			return err
		}
		go func() { _ = (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(l) }()
		tl, err := tls.Listen("tcp", net.JoinHostPort(ip, "443"), &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			return err
		}
		go func() { _ = (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(tl) }()
	}
	fmt.Println("demonet: serving DNS on", *dnsAddr, "and HTTP/TLS on", *web)
	select {}
}

// dnsLoop answers A queries for the names in table; every other query gets NXDOMAIN.
func dnsLoop(pc net.PacketConn, table map[string]net.IP) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := answer(buf[:n], table); resp != nil {
			_, _ = pc.WriteTo(resp, from)
		}
	}
}

func answer(q []byte, table map[string]net.IP) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	var labels []string
	i := 12
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if l > 63 || i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	end := i + 5
	resp := append([]byte(nil), q[:end]...)
	resp[2] = 0x81 | (q[2] & 0x01)
	resp[3] = 0x80
	binary.BigEndian.PutUint16(resp[8:10], 0)
	binary.BigEndian.PutUint16(resp[10:12], 0)
	ip, ok := table[strings.ToLower(strings.Join(labels, "."))]
	if !ok {
		resp[3] |= 3 // NXDOMAIN
		binary.BigEndian.PutUint16(resp[6:8], 0)
		return resp
	}
	if qtype != 1 {
		binary.BigEndian.PutUint16(resp[6:8], 0)
		return resp
	}
	binary.BigEndian.PutUint16(resp[6:8], 1)
	resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
	return append(resp, ip...)
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "demo"},
		DNSNames: []string{"*.demo.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func traffic(args []string) error {
	fs := flag.NewFlagSet("traffic", flag.ExitOnError)
	dnsAddr := fs.String("dns", "10.99.0.2:53", "DNS server")
	names := fs.String("names", "web.demo.test,api.demo.test", "names to resolve and visit")
	rounds := fs.Int("rounds", 3, "how many times to visit each name")
	_ = fs.Parse(args)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", *dnsAddr)
	}}
	var errs []error
	for round := 0; round < *rounds; round++ {
		for _, name := range strings.Split(*names, ",") {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			addrs, err := r.LookupIPAddr(ctx, name)
			cancel()
			if err != nil || len(addrs) == 0 {
				errs = append(errs, fmt.Errorf("resolve %s: %v", name, err))
				continue
			}
			ip := addrs[0].IP.String()
			hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					port := "80"
					if strings.HasPrefix(network, "tcp") && ctx.Value(tlsKey{}) != nil {
						port = "443"
					}
					return d.DialContext(ctx, network, net.JoinHostPort(ip, port))
				},
				DisableKeepAlives: true,
			}}
			if resp, err := hc.Get("http://" + name + "/"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else {
				errs = append(errs, err)
			}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", net.JoinHostPort(ip, "443"),
				&tls.Config{ServerName: name, InsecureSkipVerify: true}) //nolint:gosec // demo traffic only
			if err == nil {
				conn.Close()
			} else {
				errs = append(errs, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("demonet: %d rounds of DNS, HTTP and TLS traffic sent (%d errors)\n", *rounds, len(errs))
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

type tlsKey struct{}
