package auth

import (
	"context"
	"fmt"
	"log/slog"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Authorizer authenticates gRPC callers by their client certificate and authorises them by role
// against a Policy. It is safe for concurrent use.
type Authorizer struct {
	trustDomain string
	policy      Policy
	log         *slog.Logger
}

// NewAuthorizer returns an Authorizer for certificates of trustDomain ("" means DefaultTrustDomain)
// that applies policy (nil means DefaultPolicy()). A nil logger means slog.Default().
func NewAuthorizer(trustDomain string, policy Policy, logger *slog.Logger) (*Authorizer, error) {
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	if err := ValidateTrustDomain(trustDomain); err != nil {
		return nil, fmt.Errorf("new authorizer: %w", err)
	}
	if policy == nil {
		policy = DefaultPolicy()
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Authorizer{trustDomain: trustDomain, policy: policy, log: logger}, nil
}

// Authorize checks the caller of fullMethod: it returns a context carrying the caller's Identity (see
// FromContext), or a status error with codes.Unauthenticated (no usable identity) or
// codes.PermissionDenied (role not allowed).
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	id, err := PeerIdentity(ctx, a.trustDomain)
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "grpc call refused: unauthenticated",
			slog.String("grpc_method", fullMethod), slog.String("peer", peerAddr(ctx)), slog.String("err", err.Error()))
		return nil, status.Errorf(codes.Unauthenticated, "unauthenticated: %v", err)
	}
	if err := a.policy.Allow(id.Role, fullMethod); err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "grpc call refused: permission denied",
			slog.String("grpc_method", fullMethod), slog.String("peer", peerAddr(ctx)),
			slog.String("identity", id.String()))
		return nil, status.Errorf(codes.PermissionDenied, "permission denied for %s: %v", id, err)
	}
	return NewContext(ctx, id), nil
}

// authFunc adapts Authorize to go-grpc-middleware's auth.AuthFunc: the method comes from the
// server transport stream grpc puts in every handler context.
func (a *Authorizer) authFunc(ctx context.Context) (context.Context, error) {
	method, ok := grpc.Method(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "authorize: no method in context")
	}
	return a.Authorize(ctx, method)
}

// UnaryServerInterceptor authorises every unary call. Install it first in the chain.
//
// As with any go-grpc-middleware auth interceptor, a service that implements
// auth.ServiceAuthFuncOverride replaces this check with its own; FlowFleet's services must not.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return grpcauth.UnaryServerInterceptor(a.authFunc)
}

// StreamServerInterceptor authorises every streaming call before the handler runs; the handler's
// stream context carries the Identity. Install it first in the chain.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return grpcauth.StreamServerInterceptor(a.authFunc)
}

// ServerOptions returns both interceptors as grpc.ServerOptions, for servers that need no others.
// Servers that chain more interceptors should put UnaryServerInterceptor and StreamServerInterceptor
// first in their own grpc.ChainUnaryInterceptor / grpc.ChainStreamInterceptor instead.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamServerInterceptor()),
	}
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
