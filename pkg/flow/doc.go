// Package flow turns packets into bidirectional flows and names their destinations, exactly as the
// reference converter (bayse-tools 1.0.5) does; the rule ids in comments (R-DEC-5, R-DIR-L2, …) are those of
// docs/bayseflow.md.
//
// # Usage
//
//  1. Create an [Engine] with [NewEngine]; feed it frames one at a time with [Engine.Packet], in capture
//     order, each with its link type and time.
//  2. Call [Engine.Flush] when the input (or, for a live sensor, a window) ends. It returns a [Sample]: the
//     flows sorted, numbered and named (section 5 of docs/bayseflow.md), ready for the BayseFlow writer.
//
// For a large input, [NewPipeline] runs the engine on two goroutines (per-frame decoding on the caller's,
// the flow table on another), and [Engine.Detach] then [Detached.Order] give the flows a chunk at a time
// ([Ordered.Chunk]), so that they are exported, named and written on every core without all their
// records in memory at once. The flow table holds no pointers (table.go): the garbage collector never
// scans it.
//
// Flow-log inputs (Zeek, Interflow, NetFlow) build [Flow] records themselves and share the last steps
// through [Finalize] and [Name].
//
// The engine reads each frame in one streaming pass and holds only one entry per live flow, one per
// non-local address and the DNS answer table; the reference's three passes over the file (R-PCAP-5) are
// reproduced by remembering, per flow, which pass would have created it (R-ORD-2).
//
// An Engine is not safe for concurrent use. Frame bytes are not retained after Packet returns.
package flow
