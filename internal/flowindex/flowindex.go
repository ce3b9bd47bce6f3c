// Package flowindex owns fleet search's index (docs/search.md): the Indexer, which runs in the
// collector and indexes samples after they are stored, and Search/Top, which answer "who talked to X"
// from it.
//
// The index (store.FlowIndex, migration 00010) holds one row per sample × destination key: source
// and destination address, destination port, name, name source, protocol and category, with the sum of
// the key's flows, packets and bytes. The Indexer needs nothing from the collector's window closing:
// it finds the samples the index lacks (store.UnindexedSamples: new ones, old ones from before the
// index, enriched ones indexed before their labels came), reads their stored flow chunks and labels,
// and writes their rows. It lags a new sample by at most one Interval plus the time to index the
// samples before it.
//
// Guarantees enforced here: a destination filter is one indexed bound (exact name, one "*." glob,
// an address or CIDR range, or a port), so a search reads the rows that match it, not every sample;
// names are compared lowercase; "*" in a glob stands for exactly one label ("*.example.com" matches
// a.example.com, not example.com nor a.b.example.com), as a TLS wildcard and Cilium's FQDN patterns;
// results stream newest window first and stop at the limit.
package flowindex

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Indexer indexes stored samples. Run it in the collector's errgroup.
type Indexer struct {
	Store    store.Store
	Log      *slog.Logger
	Interval time.Duration // between looks for un-indexed samples; default 5s
	Batch    int           // samples per look; default 100
	Now      func() time.Time
}

// chunkPage is how many flow chunks (store.FlowChunkFlows flows each) are read at a time.
const chunkPage = 8

// Run indexes samples until ctx ends. Errors are logged and retried at the next interval.
func (x *Indexer) Run(ctx context.Context) error {
	iv := x.Interval
	if iv <= 0 {
		iv = 5 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		for {
			n, err := x.IndexPending(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				x.log().Warn("flow index", "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (x *Indexer) log() *slog.Logger {
	if x.Log == nil {
		return slog.Default()
	}
	return x.Log
}

// IndexPending indexes one batch of un-indexed samples and says how many it indexed.
func (x *Indexer) IndexPending(ctx context.Context) (int, error) {
	batch := x.Batch
	if batch <= 0 {
		batch = 100
	}
	todo, err := x.Store.UnindexedSamples(ctx, batch)
	if err != nil {
		return 0, err
	}
	for i, s := range todo {
		if err := x.indexSample(ctx, s); err != nil {
			return i, err
		}
	}
	return len(todo), nil
}

type rowKey struct {
	src, dst, name, source, proto, category string
	port                                    int
}

func (x *Indexer) indexSample(ctx context.Context, s store.IndexTodo) error {
	now := time.Now
	if x.Now != nil {
		now = x.Now
	}
	sums := map[rowKey]*store.FlowIndexRow{}
	var order []rowKey
	chunksN := (s.FlowCount + store.FlowChunkFlows - 1) / store.FlowChunkFlows
	for from := 0; from < chunksN; from += chunkPage {
		chunks, err := x.Store.SampleFlowChunks(ctx, s.ID, from, from+chunkPage)
		if err != nil {
			return fmt.Errorf("index sample %s: %w", s.ID, err)
		}
		var labels [][]store.FlowLabel
		if s.Enriched {
			if labels, err = x.Store.SampleFlowLabels(ctx, s.ID, from, from+chunkPage); err != nil {
				return fmt.Errorf("index sample %s: %w", s.ID, err)
			}
		}
		for ci, c := range chunks {
			flows, err := flowpb.Decode(c)
			if err != nil {
				return fmt.Errorf("index sample %s: chunk %d: %w", s.ID, from+ci, err)
			}
			for fi, f := range flows {
				k := keyOf(f)
				if ci < len(labels) && fi < len(labels[ci]) {
					k.category = labels[ci][fi].Category
				}
				r := sums[k]
				if r == nil {
					r = &store.FlowIndexRow{SrcKey: k.src, DstKey: k.dst, DstPort: k.port, DstName: k.name,
						NameSource: k.source, Protocol: k.proto, Category: k.category}
					sums[k] = r
					order = append(order, k)
				}
				r.Flows++
				r.Packets = satAdd(r.Packets, satAdd(f.GetSrcPkts(), f.GetDstPkts()))
				r.Bytes = satAdd(r.Bytes, satAdd(f.GetSrcBytes(), f.GetDstBytes()))
			}
		}
		if len(chunks) < chunkPage {
			break
		}
	}
	rows := make([]store.FlowIndexRow, 0, len(order))
	for _, k := range order {
		rows = append(rows, *sums[k])
	}
	return x.Store.IndexSample(ctx, s.ID, s.Enriched, rows, now())
}

func keyOf(f *flowfleetv1.Flow) rowKey {
	port := -1
	if p := f.GetDstPort(); p != "" {
		fmt.Sscan(p, &port) //nolint:errcheck // checked digits at ingest (flowpb.Check)
	}
	return rowKey{src: AddrKey(f.GetSrcAddr()), dst: AddrKey(f.GetDstAddr()), port: port,
		name:   strings.ToLower(f.GetDstName()),
		source: enumText(f.GetNameSource().String(), "NAME_SOURCE_"),
		proto:  enumText(f.GetProtocol().String(), "PROTOCOL_")}
}

func enumText(s, prefix string) string { return strings.ToLower(strings.TrimPrefix(s, prefix)) }

// satAdd adds two counters, saturating at the int64 bounds.
func satAdd(a, b int64) int64 {
	c := a + b
	if (b > 0 && c < a) || (b < 0 && c > a) {
		if b > 0 {
			return 1<<63 - 1
		}
		return -1 << 63
	}
	return c
}

// AddrKey is the index key of an address: its 16 bytes (IPv4 mapped into IPv6) as 32 hex digits, so
// that a prefix is a range of keys. An unparsable address (not stored: flowpb.Check) keys as "".
func AddrKey(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// KeyAddr is the address an AddrKey stands for, written as flows write it ("" for a bad key).
func KeyAddr(k string) string {
	b, err := hex.DecodeString(k)
	if err != nil || len(b) != 16 {
		return ""
	}
	return netip.AddrFrom16([16]byte(b)).Unmap().String()
}

// prefixRange is the AddrKey range of a prefix, both ends included.
func prefixRange(p netip.Prefix) (lo, hi string) {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	b := p.Addr().As16()
	l, h := b, b
	for i := bits; i < 128; i++ {
		h[i/8] |= 1 << (7 - i%8)
	}
	return hex.EncodeToString(l[:]), hex.EncodeToString(h[:])
}
