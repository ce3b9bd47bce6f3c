package flowindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Server is FlowService over the flow index. protovalidate checks requests first; Search and Top
// check what it cannot (CIDR prefix lengths, globs) and the errors name the field.
type Server struct {
	flowfleetv1.UnimplementedFlowServiceServer
	Store store.FlowIndex
}

const (
	defaultSearchLimit = 1000
	defaultTopLimit    = 10
	rowsPerMessage     = 500
)

func filterOf(f *flowfleetv1.FlowFilter) Filter {
	out := Filter{Hosts: f.GetHosts(), Src: f.GetSrc(), Dst: f.GetDst(), Port: int(f.GetPort()), Proto: f.GetProtocol(),
		NameSource: f.GetNameSource(), Category: f.GetCategory()}
	if f.GetSince() != nil {
		out.Since = f.GetSince().AsTime()
	}
	if f.GetUntil() != nil {
		out.Until = f.GetUntil().AsTime()
	}
	return out
}

func statusOf(err error) error {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		return status.Errorf(codes.InvalidArgument, "filter.%s: %s", fe.Field, fe.Msg)
	case errors.Is(err, ErrTooManyGroups):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "flow index: %v", err)
}

// SearchFlows streams matching rows, rowsPerMessage a message, and flags a cut on the last one.
func (s *Server) SearchFlows(req *flowfleetv1.SearchFlowsRequest, stream grpc.ServerStreamingServer[flowfleetv1.SearchFlowsResponse]) error {
	f := filterOf(req.GetFilter())
	if f.Limit = int(req.GetLimit()); f.Limit == 0 {
		f.Limit = defaultSearchLimit
	}
	msg := &flowfleetv1.SearchFlowsResponse{}
	var sendErr error
	cut, err := Search(stream.Context(), s.Store, f, func(r Result) error {
		msg.Rows = append(msg.Rows, &flowfleetv1.FlowRow{SampleId: r.SampleID, Host: r.Host,
			WindowStart: timestamppb.New(time.Unix(r.WindowStart, 0)), SrcAddr: r.SrcAddr, DstAddr: r.DstAddr,
			DstPort: int32(r.DstPort), DstName: r.DstName, NameSource: r.NameSource, Protocol: r.Protocol,
			Category: r.Category, Flows: r.Flows, Packets: r.Packets, Bytes: r.Bytes})
		if len(msg.Rows) < rowsPerMessage {
			return nil
		}
		sendErr = stream.Send(msg)
		msg = &flowfleetv1.SearchFlowsResponse{}
		return sendErr
	})
	switch {
	case sendErr != nil:
		return fmt.Errorf("send: %w", sendErr)
	case err != nil:
		return statusOf(err)
	}
	msg.Limited = cut
	if err := stream.Send(msg); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// TopFlows returns the groups with the most flows.
func (s *Server) TopFlows(ctx context.Context, req *flowfleetv1.TopFlowsRequest) (*flowfleetv1.TopFlowsResponse, error) {
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultTopLimit
	}
	gs, err := Top(ctx, s.Store, filterOf(req.GetFilter()), req.GetBy(), limit)
	if err != nil {
		return nil, statusOf(err)
	}
	out := &flowfleetv1.TopFlowsResponse{}
	for _, g := range gs {
		out.Groups = append(out.Groups, &flowfleetv1.FlowGroup{Key: g.Key, Hosts: int64(g.Hosts), Flows: g.Flows,
			Packets: g.Packets, Bytes: g.Bytes})
	}
	return out, nil
}
