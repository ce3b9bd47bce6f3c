package collector

import (
	"context"
	"log/slog"
	"time"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	protovalidatemw "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/flowindex"
)

// MaxMessageSize is the largest message the collector accepts: a full batch of 10,000 flows fits.
const MaxMessageSize = 16 << 20

// NewGRPCServer builds the collector's gRPC server on mTLS credentials, with the interceptor chain
// recovery → logging → authorization (role from the certificate) → protovalidate, the three services,
// health and reflection. The health service reports NOT_SERVING while the collector cannot store
// (WatchHealth). A connection whose TLS handshake has not finished after Config.Listener.HandshakeTimeout is
// closed and counted (conns.go).
func (c *Collector) NewGRPCServer(creds credentials.TransportCredentials) (*grpc.Server, *health.Server, error) {
	authz, err := auth.NewAuthorizer(c.cfg.TrustDomain, auth.DefaultPolicy(), c.log)
	if err != nil {
		return nil, nil, err
	}
	pv, err := protovalidate.New()
	if err != nil {
		return nil, nil, err
	}
	validator := fastValidator{pv} // flow batches take a shortcut (validate.go)
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		c.log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(func(code codes.Code) logging.Level {
		switch code {
		case codes.OK, codes.Canceled, codes.NotFound:
			return logging.LevelDebug
		case codes.Internal, codes.DataLoss, codes.Unknown:
			return logging.LevelError
		}
		return logging.LevelWarn
	})}
	rec := recovery.WithRecoveryHandler(func(p any) error {
		c.log.Error("panic in RPC handler", "panic", p)
		return status.Error(codes.Internal, "internal error")
	})
	srv := grpc.NewServer(
		grpc.Creds(guardedCreds{TransportCredentials: creds, g: c.conns}),
		grpc.ConnectionTimeout(c.cfg.Listener.HandshakeTimeout), // conns.go
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxConcurrentStreams(c.cfg.Listener.MaxStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(rec), logging.UnaryServerInterceptor(logger, logOpts...),
			authz.UnaryServerInterceptor(), protovalidatemw.UnaryServerInterceptor(validator)),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(rec), logging.StreamServerInterceptor(logger, logOpts...),
			authz.StreamServerInterceptor(), protovalidatemw.StreamServerInterceptor(validator)),
	)
	flowfleetv1.RegisterIngestServiceServer(srv, &ingestServer{c: c, st: c.store})
	flowfleetv1.RegisterSampleServiceServer(srv, &sampleServer{c: c, st: c.store})
	flowfleetv1.RegisterFleetServiceServer(srv, &fleetServer{c: c, st: c.store})
	flowfleetv1.RegisterFlowServiceServer(srv, &flowindex.Server{Store: c.store}) // fleet search (docs/search.md)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs, nil
}
