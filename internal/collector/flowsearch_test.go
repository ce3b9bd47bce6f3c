package collector

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowindex"
	"github.com/flowfleet/flowfleet/internal/pki"
)

// FlowService over real mTLS: flows ingested by two sensors (names from DNS and from TLS SNI) are
// indexed and found by name, glob and port, summed by TopFlows; bad filters are INVALID_ARGUMENT
// naming the field; a sensor may not search.
func TestFlowServiceSearch(t *testing.T) {
	p := newTestPKI(t)
	tc := startCollector(t, p, Config{Window: 60 * time.Second})
	ws := int64(1_700_000_040)
	sendWindow(t, p, tc.addr, "web01", ws, 3) // 3 flows to example.com (93.184.216.34:443), name from DNS
	s, err := openSensor(t, dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web02", pki.IssueOptions{})), "s", 60)
	if err != nil {
		t.Fatal(err)
	}
	sni := testFlows(ws, 2, 0)
	for _, f := range sni {
		f.DstAddr, f.DstName, f.NameSource = "93.184.216.35", "api.example.com", flowfleetv1.NameSource_NAME_SOURCE_SESSION
	}
	s.send(1, sni)
	if seq, dup := s.ack(); seq != 1 || dup {
		t.Fatalf("ack %d dup %v", seq, dup)
	}
	s.endWindow(ws, 60, 0)
	for _, h := range []string{"web01", "web02"} {
		id := fmt.Sprintf("%s_%d", h, ws)
		waitFor(t, "sample "+id, func() bool { x, _ := tc.st.GetSample(context.Background(), id); return x != nil && x.FlowCount > 0 })
	}
	if n, err := (&flowindex.Indexer{Store: tc.st}).IndexPending(context.Background()); err != nil || n != 2 {
		t.Fatalf("indexed %d, %v", n, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	reader := flowfleetv1.NewFlowServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	search := func(f *flowfleetv1.FlowFilter, limit uint32) ([]string, bool, error) {
		st, err := reader.SearchFlows(ctx, &flowfleetv1.SearchFlowsRequest{Filter: f, Limit: limit})
		if err != nil {
			return nil, false, err
		}
		var out []string
		limited := false
		for {
			m, err := st.Recv()
			if err == io.EOF {
				return out, limited, nil
			}
			if err != nil {
				return nil, false, err
			}
			for _, r := range m.GetRows() {
				out = append(out, fmt.Sprintf("%s %s>%s:%d %s %s %d", r.GetHost(), r.GetSrcAddr(), r.GetDstAddr(), r.GetDstPort(),
					r.GetDstName(), r.GetNameSource(), r.GetFlows()))
			}
			limited = m.GetLimited()
		}
	}
	web01 := "web01 10.0.0.5>93.184.216.34:443 example.com passive 3"
	web02 := "web02 10.0.0.5>93.184.216.35:443 api.example.com session 2"
	for _, c := range []struct {
		f     *flowfleetv1.FlowFilter
		limit uint32
		want  []string
		cut   bool
	}{
		{&flowfleetv1.FlowFilter{Dst: "example.com"}, 0, []string{web01}, false},
		{&flowfleetv1.FlowFilter{Dst: "*.example.com"}, 0, []string{web02}, false},
		{&flowfleetv1.FlowFilter{Dst: "93.184.216.32/28", Port: 443}, 0, []string{web01, web02}, false},
		{&flowfleetv1.FlowFilter{NameSource: "session"}, 0, []string{web02}, false},
		{&flowfleetv1.FlowFilter{Hosts: []string{"web02"}, Src: "10.0.0.0/8"}, 0, []string{web02}, false},
		{&flowfleetv1.FlowFilter{Port: 443}, 1, []string{web01}, true},
	} {
		got, cut, err := search(c.f, c.limit)
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") || cut != c.cut {
			t.Errorf("search %v limit %d: %q cut %v, %v; want %q cut %v", c.f, c.limit, got, cut, err, c.want, c.cut)
		}
	}
	top, err := reader.TopFlows(ctx, &flowfleetv1.TopFlowsRequest{By: "dst-name"})
	if err != nil || len(top.GetGroups()) != 2 || top.GetGroups()[0].GetKey() != "example.com" || top.GetGroups()[0].GetFlows() != 3 ||
		top.GetGroups()[1].GetKey() != "api.example.com" || top.GetGroups()[1].GetFlows() != 2 {
		t.Errorf("top by dst-name: %v, %v", top, err)
	}

	for _, c := range []struct {
		f     *flowfleetv1.FlowFilter
		field string
	}{
		{&flowfleetv1.FlowFilter{Dst: "10.0.0.0/33"}, "dst"},
		{&flowfleetv1.FlowFilter{Dst: "a.*.example.com"}, "dst"},
		{&flowfleetv1.FlowFilter{Src: "not-an-ip"}, "src"},
		{&flowfleetv1.FlowFilter{Protocol: "sctp"}, "protocol"},
		{&flowfleetv1.FlowFilter{Port: 70000}, "port"},
		{&flowfleetv1.FlowFilter{Category: strings.Repeat("c", 257)}, "category"},
	} {
		_, _, err := search(c.f, 0)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) {
			t.Errorf("search %v: %v, want INVALID_ARGUMENT naming %s", c.f, err, c.field)
		}
	}
	if _, _, err := search(nil, 100_001); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "limit") {
		t.Errorf("limit 100001: %v", err)
	}
	if _, err := reader.TopFlows(ctx, &flowfleetv1.TopFlowsRequest{By: "srcport"}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "by") {
		t.Errorf("top by srcport: %v", err)
	}
	sensor := flowfleetv1.NewFlowServiceClient(dialAs(t, tc.addr, p.Issue(t, auth.RoleSensor, "web03", pki.IssueOptions{})))
	if _, err := sensor.TopFlows(ctx, &flowfleetv1.TopFlowsRequest{By: "host"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("sensor TopFlows: %v, want PermissionDenied", err)
	}
}
