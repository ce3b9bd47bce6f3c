// Package proto_test checks that the protovalidate rules written in proto/flowfleet/v1 compile and
// accept and refuse what their comments promise. The package holds no code: proto/ is the Buf module
// and this test is its only Go file.
package proto_test

import (
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

func validFlow() *flowfleetv1.Flow {
	return &flowfleetv1.Flow{
		SrcAddr: "10.0.2.15", SrcPort: "54661", DstAddr: "2001:db8::1", DstPort: "443",
		DstName: "www.example.com", NameSource: flowfleetv1.NameSource_NAME_SOURCE_PASSIVE,
		Protocol: flowfleetv1.Protocol_PROTOCOL_TCP, SrcPkts: 3, SrcBytes: -1, DstPkts: 2, DstBytes: 1500,
		FirstSeen: 1617652286.24605, LastSeen: 1617652286.320474, WindowStart: 1617652200,
	}
}

func TestRules(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	batch := func(flows ...*flowfleetv1.Flow) *flowfleetv1.IngestRequest {
		return &flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{Seq: 1, Flows: flows}}}
	}
	flow := func(edit func(*flowfleetv1.Flow)) *flowfleetv1.IngestRequest {
		f := validFlow()
		edit(f)
		return batch(f)
	}
	hello := func(edit func(*flowfleetv1.Hello)) *flowfleetv1.IngestRequest {
		h := &flowfleetv1.Hello{StreamId: "0b6f7c1e-8d7a-4a37-9a52-3d2f0f6a9a10", SoftwareVersion: "v0.1.0", WindowSeconds: 300}
		edit(h)
		return &flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Hello{Hello: h}}
	}
	windowEnd := func(start int64, secs uint32) *flowfleetv1.IngestRequest {
		return &flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_WindowEnd{WindowEnd: &flowfleetv1.WindowEnd{WindowStart: start, WindowSeconds: secs}}}
	}
	many := make([]*flowfleetv1.Flow, 10001)
	for i := range many {
		many[i] = validFlow()
	}
	ts := timestamppb.New

	tests := []struct {
		name    string
		msg     proto.Message
		wantErr string // "" means valid
	}{
		{"hello ok", hello(func(*flowfleetv1.Hello) {}), ""},
		{"hello no stream id", hello(func(h *flowfleetv1.Hello) { h.StreamId = "" }), "stream_id"},
		{"hello long stream id", hello(func(h *flowfleetv1.Hello) { h.StreamId = strings.Repeat("a", 129) }), "stream_id"},
		{"hello space in stream id", hello(func(h *flowfleetv1.Hello) { h.StreamId = "a b" }), "stream_id"},
		{"hello window too short", hello(func(h *flowfleetv1.Hello) { h.WindowSeconds = 9 }), "window_seconds"},
		{"hello window too long", hello(func(h *flowfleetv1.Hello) { h.WindowSeconds = 86401 }), "window_seconds"},
		{"hello no version", hello(func(h *flowfleetv1.Hello) { h.SoftwareVersion = "" }), "software_version"},
		{"empty request", &flowfleetv1.IngestRequest{}, "message"},
		{"batch ok", batch(validFlow()), ""},
		{"batch empty (drops only)", batch(), ""},
		{"batch seq 0", &flowfleetv1.IngestRequest{Message: &flowfleetv1.IngestRequest_Batch{Batch: &flowfleetv1.FlowBatch{}}}, "seq"},
		{"batch too many flows", batch(many...), "flows"},
		{"icmp ok", flow(func(f *flowfleetv1.Flow) {
			f.Protocol, f.SrcPort, f.DstPort = flowfleetv1.Protocol_PROTOCOL_ICMP, "", ""
		}), ""},
		{"icmp with port", flow(func(f *flowfleetv1.Flow) { f.Protocol = flowfleetv1.Protocol_PROTOCOL_ICMP }), "ICMP flow carries no ports"},
		{"bad address", flow(func(f *flowfleetv1.Flow) { f.SrcAddr = "10.0.2" }), "src_addr"},
		{"bad port", flow(func(f *flowfleetv1.Flow) { f.DstPort = "44a" }), "dst_port"},
		{"no name", flow(func(f *flowfleetv1.Flow) { f.DstName = "" }), "dst_name"},
		{"long name", flow(func(f *flowfleetv1.Flow) { f.DstName = strings.Repeat("a", 1025) }), "dst_name"},
		{"no name source", flow(func(f *flowfleetv1.Flow) { f.NameSource = 0 }), "name_source"},
		{"unknown protocol", flow(func(f *flowfleetv1.Flow) { f.Protocol = 99 }), "protocol"},
		{"negative packets", flow(func(f *flowfleetv1.Flow) { f.SrcPkts = -1 }), "src_pkts"},
		{"last before first", flow(func(f *flowfleetv1.Flow) { f.LastSeen = f.FirstSeen - 1 }), "last_seen must not be before first_seen"},
		{"window end ok", windowEnd(1617652200, 300), ""},
		{"window end unaligned", windowEnd(1617652201, 300), "multiple of window_seconds"},
		{"window end zero length", windowEnd(0, 0), "window_seconds"},
		{"list samples ok", &flowfleetv1.ListSamplesRequest{Host: "web01", Since: ts(time1), Until: ts(time2), PageSize: 1000}, ""},
		{"list samples range", &flowfleetv1.ListSamplesRequest{Since: ts(time2), Until: ts(time1)}, "since must be before until"},
		{"list samples page", &flowfleetv1.ListSamplesRequest{PageSize: 1001}, "page_size"},
		{"list samples token", &flowfleetv1.ListSamplesRequest{PageToken: strings.Repeat("t", 513)}, "page_token"},
		{"list samples host", &flowfleetv1.ListSamplesRequest{Host: "a/b"}, "host"},
		{"list samples state", &flowfleetv1.ListSamplesRequest{State: 42}, "state"},
		{"get sample no id", &flowfleetv1.GetSampleRequest{}, "id"},
		{"get sample bad id", &flowfleetv1.GetSampleRequest{Id: "../x"}, "id"},
		{"content ok", &flowfleetv1.GetSampleContentRequest{Id: "01J9Z8"}, ""},
		{"sample flows page", &flowfleetv1.ListSampleFlowsRequest{Id: "x", PageSize: 10001}, "page_size"},
		{"watch ok", &flowfleetv1.WatchSamplesRequest{}, ""},
		{"list hosts page", &flowfleetv1.ListHostsRequest{PageSize: 1001}, "page_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(tt.msg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("valid message refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

var (
	time1 = mustTime("2026-01-01T00:00:00Z")
	time2 = mustTime("2026-01-02T00:00:00Z")
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
