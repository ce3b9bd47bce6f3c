package collector

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

// addHosts makes n hosts host0000, host0001, … in one store commit.
func addHosts(t *testing.T, st store.Store, n int) []string {
	t.Helper()
	var names []string
	var bs []store.Batch
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("host%04d", i)
		names = append(names, name)
		bs = append(bs, store.Batch{Host: name, StreamID: "s", Seq: 1, Drops: 1, Received: time.Now()})
	}
	if _, err := st.SaveBatches(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	return names
}

// ListHosts pages as its proto says: 100 hosts by default, page_size up to 1000, next_page_token
// until the last page; connected_only keeps to hosts with an open stream.
func TestListHostsPaging(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second, Name: "c1"})
	want := addHosts(t, tc.st, 250)
	reader := flowfleetv1.NewFleetServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	list := func(req *flowfleetv1.ListHostsRequest) (names []string, pages int) {
		t.Helper()
		for {
			resp, err := reader.ListHosts(ctx, req)
			if err != nil {
				t.Fatalf("ListHosts %v: %v", req, err)
			}
			size := int(req.GetPageSize())
			if size == 0 {
				size = store.DefaultHostPageSize
			}
			if len(resp.GetHosts()) > size {
				t.Fatalf("page of %d hosts for page_size %d", len(resp.GetHosts()), req.GetPageSize())
			}
			for _, h := range resp.GetHosts() {
				names = append(names, h.GetName())
			}
			pages++
			if resp.GetNextPageToken() == "" {
				return names, pages
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	for _, c := range []struct {
		size  uint32
		pages int
	}{{0, 3}, {7, 36}, {250, 1}, {1000, 1}} {
		got, pages := list(&flowfleetv1.ListHostsRequest{PageSize: c.size})
		if !slices.Equal(got, want) || pages != c.pages {
			t.Errorf("page_size %d: %d hosts in %d pages, want %d in %d, in name order", c.size, len(got), pages, len(want), c.pages)
		}
	}
	// The first page holds the default 100.
	resp, err := reader.ListHosts(ctx, &flowfleetv1.ListHostsRequest{})
	if err != nil || len(resp.GetHosts()) != 100 || resp.GetNextPageToken() == "" {
		t.Fatalf("first page: %d hosts, next %q, %v", len(resp.GetHosts()), resp.GetNextPageToken(), err)
	}
	// connected_only, across pages: one sensor connected here.
	sensor, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "host0123", pki.IssueOptions{})), "s2", 60)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := list(&flowfleetv1.ListHostsRequest{ConnectedOnly: true, PageSize: 10}); !slices.Equal(got, []string{"host0123"}) {
		t.Errorf("connected only: %q", got)
	}
	if got, _ := list(&flowfleetv1.ListHostsRequest{PageSize: 100}); !slices.Equal(got, want) {
		t.Errorf("with a sensor connected: %d hosts", len(got))
	}
	sensor.stream.CloseSend()
	waitFor(t, "the sensor's goodbye", func() bool {
		got, _ := list(&flowfleetv1.ListHostsRequest{ConnectedOnly: true})
		return len(got) == 0
	})
	// Bad requests.
	for _, req := range []*flowfleetv1.ListHostsRequest{{PageSize: 1001}, {PageToken: "not a token"}, {PageToken: "bm90LWEtdG9rZW4"}} {
		if _, err := reader.ListHosts(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListHosts %v: %v, want InvalidArgument", req, err)
		}
	}
}
