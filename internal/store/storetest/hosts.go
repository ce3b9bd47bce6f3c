package storetest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/flowfleet/flowfleet/internal/store"
)

func hostNames(hosts []store.Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

// testHostsPaging pages through more hosts than the largest page.
func testHostsPaging(t *testing.T, e *env) {
	const n = store.MaxPageSize + 1
	var bs []store.Batch
	var want []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("h%04d", i)
		want = append(want, name)
		bs = append(bs, store.Batch{Host: name, StreamID: "s", Seq: 1, Drops: 1, Received: at(0)})
	}
	slices.Reverse(bs) // the order hosts were made in does not matter
	save(t, e.st, bs...)
	contact(t, e.st, store.HostContact{Name: "h0003", Connected: true, Collector: "c1", At: at(0)})
	contact(t, e.st, store.HostContact{Name: "h0500", Connected: true, Collector: "c2", At: at(0)})
	contact(t, e.st, store.HostContact{Name: "h0700", Connected: false, Collector: "c1", At: at(0)})

	// The default page, and a page size past the cap.
	page, next, err := e.st.ListHosts(ctx(t), store.HostFilter{})
	if err != nil || len(page) != store.DefaultHostPageSize || next == "" || page[0].Name != "h0000" {
		t.Fatalf("default page: %d hosts (first %v), next %q, %v; want %d and a next token", len(page), hostNames(page[:min(1, len(page))]), next, err, store.DefaultHostPageSize)
	}
	page, next, err = e.st.ListHosts(ctx(t), store.HostFilter{PageSize: 10 * store.MaxPageSize})
	if err != nil || len(page) != store.MaxPageSize || next == "" {
		t.Fatalf("huge page size: %d hosts, next %q, %v; want %d and a next token", len(page), next, err, store.MaxPageSize)
	}
	for _, size := range []int{7, 100, store.MaxPageSize, n} {
		f := store.HostFilter{PageSize: size}
		var got []string
		pages := 0
		for {
			page, next, err := e.st.ListHosts(ctx(t), f)
			if err != nil {
				t.Fatalf("page size %d: %v", size, err)
			}
			if len(page) > size || (next != "" && len(page) != min(size, store.MaxPageSize)) {
				t.Fatalf("page size %d: page of %d with next %q", size, len(page), next)
			}
			got = append(got, hostNames(page)...)
			pages++
			if next == "" {
				break
			}
			f.PageToken = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("page size %d: %d hosts listed (%d pages), want all %d in name order", size, len(got), pages, n)
		}
		if wantPages := (n + min(size, store.MaxPageSize) - 1) / min(size, store.MaxPageSize); pages != wantPages {
			t.Errorf("page size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	// Connected only: the hosts marked connected, and those of the asking collector (which filters them
	// itself), page by page.
	if got := hostNames(allHosts(t, e.st, store.HostFilter{ConnectedOnly: true, PageSize: 1})); !slices.Equal(got, []string{"h0003", "h0500"}) {
		t.Errorf("connected only: %q", got)
	}
	if got := hostNames(allHosts(t, e.st, store.HostFilter{ConnectedOnly: true, Collector: "c1", PageSize: 2})); !slices.Equal(got, []string{"h0003", "h0500", "h0700"}) {
		t.Errorf("connected only, asked by c1: %q", got)
	}
	// A token names the last host of a page, which need not exist any more.
	if page, next, err := e.st.ListHosts(ctx(t), store.HostFilter{PageToken: store.HostPageToken("h0999x")}); err != nil || next != "" ||
		!slices.Equal(hostNames(page), []string{"h1000"}) {
		t.Errorf("after h0999x: %q, next %q, %v", hostNames(page), next, err)
	}
	// Tokens this method did not make, including ListSamples' tokens, are refused, and the other way round.
	samplesToken := base64.RawURLEncoding.EncodeToString([]byte("1700000100:h_1700000100")) // ListSamples' scheme
	for _, bad := range []string{"!!!", "bm90LWEtdG9rZW4", "Zm9vOmJhcg", samplesToken} {
		if _, _, err := e.st.ListHosts(ctx(t), store.HostFilter{PageToken: bad}); !errors.Is(err, store.ErrBadToken) {
			t.Errorf("hosts page token %q: %v, want ErrBadToken", bad, err)
		}
	}
	if _, _, err := e.st.ListSamples(ctx(t), store.SampleFilter{PageToken: store.HostPageToken("h0001")}); !errors.Is(err, store.ErrBadToken) {
		t.Errorf("a hosts token given to ListSamples: %v, want ErrBadToken", err)
	}
}
