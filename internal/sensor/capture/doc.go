// Package capture reads packets from network interfaces for the sensor: libpcap (gopacket/pcap) or, on
// Linux, AF_PACKET with a TPACKET_V3 ring (gopacket/afpacket), both with a kernel BPF filter. Each
// Source copies the packets it reads into a bounded Queue that drops (and counts) when full, so that
// a slow flow engine never stalls the kernel ring; one consumer feeds the engine from the queue.
//
// # Link layers
//
// Packets leave a Source in a layout the flow engine reads the same way as `flowctl convert` reads a
// capture of the same traffic:
//
//   - pcap on an Ethernet (or loopback) interface: Ethernet frames, unchanged;
//   - pcap on "any": Linux cooked (SLL v1, or v2) frames rewritten into Ethernet layout (a 14-byte header
//     whose EtherType is the cooked header's protocol). The engine keeps the reference converter's
//     cooked-capture quirk (R-DEC-10), which drops every packet whose packet type is not "to us" —
//     outgoing packets included — so feeding it raw cooked frames would lose half of each conversation;
//   - AF_PACKET: a SOCK_DGRAM socket, so every interface (Ethernet, loopback, tun, "any") yields IP
//     packets without a link header (link type raw IP); the BPF filter is compiled for raw IP, so
//     link-layer primitives (ether host, vlan) are refused. Outgoing packets on loopback are dropped in
//     the kernel, as libpcap does, because each is seen again as incoming.
//
// # Concurrency
//
// A Source is used by one goroutine (Run); KernelDrops and Packets may be called from any goroutine.
// A Queue is safe for any number of producers and one consumer.
package capture
