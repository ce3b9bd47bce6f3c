package storetest

import (
	"encoding/base64"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/flowfleet/flowfleet/internal/store"
)

// testCountersSaturate: drop counters near 2^64 and 2^63 saturate at 2^63−1 instead of overflowing
// the stored sums, and ListHosts still reads every host, the others' counters unchanged (issue 14,
// item 3). Packet and flow drops are kept apart (item 4).
func testCountersSaturate(t *testing.T, e *env) {
	save(t, e.st, store.Batch{Host: "calm", StreamID: "s", Seq: 1, Drops: 5, FlowDrops: 7, Received: at(0)})
	huge := []uint64{math.MaxUint64, math.MaxUint64 - 1, 1 << 63, 1<<63 - 1, 1<<63 - 2}
	for i, d := range huge {
		save(t, e.st, store.Batch{Host: "loud", StreamID: "s", Seq: uint64(i + 1), Drops: d, FlowDrops: d, Received: at(0)})
	}
	// In one transaction too, and through a hello.
	save(t, e.st, store.Batch{Host: "group", StreamID: "s", Seq: 1, Drops: 1 << 62, FlowDrops: 1, Received: at(0)},
		store.Batch{Host: "group", StreamID: "s", Seq: 2, Drops: 1 << 62, Received: at(0)},
		store.Batch{Host: "group", StreamID: "s", Seq: 3, Drops: 1 << 62, Received: at(0)})
	contact(t, e.st, store.HostContact{Name: "hello", Connected: true, Collector: "c", Drops: math.MaxUint64, At: at(0)})
	contact(t, e.st, store.HostContact{Name: "hello", Connected: true, Collector: "c", Drops: math.MaxUint64, At: at(0)})
	hosts := allHosts(t, e.st, store.HostFilter{})
	if got := hostNames(hosts); !slices.Equal(got, []string{"calm", "group", "hello", "loud"}) {
		t.Fatalf("hosts %q", got)
	}
	const sat = math.MaxInt64
	for _, h := range hosts {
		var drops, flowDrops uint64
		switch h.Name {
		case "calm":
			drops, flowDrops = 5, 7
		case "group":
			drops, flowDrops = sat, 1
		case "hello":
			drops, flowDrops = sat, 0
		case "loud":
			drops, flowDrops = sat, sat
		}
		if h.DropsReported != drops || h.FlowsDropped != flowDrops {
			t.Errorf("%s: packet drops %d, flow drops %d; want %d, %d", h.Name, h.DropsReported, h.FlowsDropped, drops, flowDrops)
		}
	}
	// Still saturated (not wrapped) after more.
	save(t, e.st, store.Batch{Host: "loud", StreamID: "s", Seq: 99, Drops: 1, FlowDrops: 1, Received: at(0)})
	if h := host(t, e.st, "loud"); h.DropsReported != sat || h.FlowsDropped != sat {
		t.Fatalf("after one more: %+v", h)
	}
}

// testSeqReplayRule: a seq at or below a stream's mark is a duplicate only when it was stored; other
// seqs below the mark, seqs too far below it and seqs out of range are refused and not stored (issue
// 14, item 5).
func testSeqReplayRule(t *testing.T, e *env) {
	b := func(seq uint64) store.Batch { return batch("h", "s", seq, at(0), 1, w0) }
	// 1, 2, 3 and 5 stored: 4 never was.
	if got := saveOutcomes(t, e.st, b(1), b(2), b(3), b(5)); !slices.Equal(got, []store.Outcome{store.Stored, store.Stored, store.Stored, store.Stored}) {
		t.Fatalf("first batches: %v", got)
	}
	// A genuine replay after a reconnect: duplicates, in one group and alone.
	if got := saveOutcomes(t, e.st, b(2), b(3), b(5), b(6)); !slices.Equal(got, []store.Outcome{store.Duplicate, store.Duplicate, store.Duplicate, store.Stored}) {
		t.Fatalf("replay: %v", got)
	}
	// A backwards seq that was never stored, and out-of-range seqs.
	for _, seq := range []uint64{4, 0, 1 << 63, math.MaxUint64} {
		if got := saveOutcomes(t, e.st, b(seq)); got[0] != store.OutOfOrder {
			t.Errorf("seq %d: %v, want out of order", seq, got[0])
		}
	}
	// Far ahead: the old seqs leave the remembered range.
	if got := saveOutcomes(t, e.st, b(6+store.RecentSeqs), b(6+store.RecentSeqs+1)); got[0] != store.Stored || got[1] != store.Stored {
		t.Fatalf("jump: %v", got)
	}
	for seq, want := range map[uint64]store.Outcome{
		6:                    store.OutOfOrder, // stored, but 257 below the mark: the store can no longer vouch for it
		7:                    store.OutOfOrder, // in range, never stored
		6 + store.RecentSeqs: store.Duplicate, 6 + store.RecentSeqs + 1: store.Duplicate,
	} {
		if got := saveOutcomes(t, e.st, b(seq)); got[0] != want {
			t.Errorf("seq %d after the jump: %v, want %v", seq, got[0], want)
		}
	}
	// Another stream of the same host is not affected.
	if got := saveOutcomes(t, e.st, batch("h", "other", 4, at(0), 1, w0)); got[0] != store.Stored {
		t.Fatalf("other stream: %v", got[0])
	}
	// Only stored batches count: 1, 2, 3, 5, 6, 262, 263 and the other stream's 4.
	_, c := closeWindow(t, e.st, ref("h", w0))
	if len(c.Batches) != 8 {
		t.Fatalf("window holds %d batches, want 8: %q", len(c.Batches), batchesAsStrings(c))
	}
	if h := host(t, e.st, "h"); h.FlowsReceived != 8 {
		t.Fatalf("host counts %d flows, want 8", h.FlowsReceived)
	}
}

// testStrictPageTokens: a page token is accepted only as exactly the text the store issued, for
// samples and hosts (issue 14, item 10).
func testStrictPageTokens(t *testing.T, e *env) {
	makeSamples(t, e.st, []string{"a", "b"}, []int64{w0, w1})
	_, next, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageSize: 1})
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, %v", next, err)
	}
	if _, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageSize: 1, PageToken: next}); err != nil {
		t.Fatalf("the issued token: %v", err)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	raw, _ := base64.RawURLEncoding.DecodeString(next)
	head, id, _ := strings.Cut(string(raw), ":")
	for _, bad := range []string{b64("+" + head + ":" + id), b64("0" + head + ":" + id), next + "\n", next[:len(next)-1] + "\r\n" + next[len(next)-1:],
		base64.URLEncoding.EncodeToString(raw) + "=", b64(head + ":" + id + "\x00")[:len(b64(head+":"+id))] + "A"} {
		if bad == next {
			continue
		}
		if _, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageSize: 1, PageToken: bad}); !errors.Is(err, store.ErrBadToken) {
			t.Errorf("sample page token %q: %v, want ErrBadToken", bad, err)
		}
	}
	save(t, e.st, batch("h1", "s", 1, at(0), 1, w0), batch("h2", "s", 1, at(0), 1, w0))
	if _, _, err := e.st.ListHosts(ctx(t), store.HostFilter{PageToken: store.HostPageToken("h1")}); err != nil {
		t.Fatalf("the issued host token: %v", err)
	}
	for _, bad := range []string{store.HostPageToken("h1") + "\n", base64.URLEncoding.EncodeToString([]byte("host:h1"))} {
		if _, _, err := e.st.ListHosts(ctx(t), store.HostFilter{PageToken: bad}); !errors.Is(err, store.ErrBadToken) {
			t.Errorf("host page token %q: %v, want ErrBadToken", bad, err)
		}
	}
}
