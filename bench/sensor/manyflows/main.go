// Command manyflows writes a pcap capture with a given number of distinct flows, for the sensor
// benchmark's memory measurement (bench/sensor): -flows client hosts (10.128.0.0/9), each sending
// -packets UDP datagrams (and getting as many answers with -replies) from its own port to one of a few
// hundred public servers on port 443, all flows interleaved in one short stretch of time so that they
// are all in the flow table at once.
//
//	manyflows -o flows.pcap -flows 1000000
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("o", "flows.pcap", "output file")
	flows := flag.Int("flows", 1_000_000, "distinct flows (at most 8,388,608)")
	packets := flag.Int("packets", 1, "datagrams each client sends")
	replies := flag.Bool("replies", false, "servers answer every datagram (bidirectional flows)")
	payload := flag.Int("payload", 64, "UDP payload bytes")
	flag.Parse()
	if *flows < 1 || *flows > 1<<23 || *packets < 1 || *payload < 0 || *payload > 1400 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manyflows:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 4<<20)
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 1)
	w.Write(h[:])
	frame := make([]byte, 14+20+8+*payload)
	var id uint16
	count := 0
	write := func(src, dst [4]byte, sport, dport uint16) {
		b := frame
		copy(b, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
		ip := b[14:]
		tl := 20 + 8 + *payload
		id++
		copy(ip, []byte{0x45, 0, byte(tl >> 8), byte(tl), byte(id >> 8), byte(id), 0x40, 0, 64, 17, 0, 0})
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20]))
		u := ip[20:]
		binary.BigEndian.PutUint16(u[0:], sport)
		binary.BigEndian.PutUint16(u[2:], dport)
		binary.BigEndian.PutUint16(u[4:], uint16(8+*payload))
		binary.BigEndian.PutUint16(u[6:], 0)
		// Capture times: one microsecond apart from 1700000000 (the sensor uses its own clock anyway).
		t := int64(count)
		var rec [16]byte
		binary.LittleEndian.PutUint32(rec[0:], uint32(1700000000+t/1_000_000))
		binary.LittleEndian.PutUint32(rec[4:], uint32(t%1_000_000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(b)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(b)))
		w.Write(rec[:])
		w.Write(b)
		count++
	}
	for p := 0; p < *packets; p++ {
		for i := 0; i < *flows; i++ {
			cli := [4]byte{10, byte(128 | i>>16), byte(i >> 8), byte(i)}
			s := i % 251
			srv := [4]byte{byte(20 + s%50), 1, byte(s), 7}
			sport := uint16(32768 + i%28000)
			write(cli, srv, sport, 443)
			if *replies {
				write(srv, cli, 443, sport)
			}
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "manyflows:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "manyflows:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "manyflows: %s: %d flows, %d packets\n", *out, *flows, count)
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
