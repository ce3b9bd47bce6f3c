package auth

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

type identityKey struct{}

// NewContext returns a copy of ctx carrying id. The interceptors call it; tests may too.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the caller's identity as established by the Authorizer's interceptors from the
// peer's verified TLS certificate (credentials.TLSInfo). ok is false when no interceptor ran.
func FromContext(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// ErrNoPeerCertificate is returned by PeerIdentity when the connection carries no verified client
// certificate.
var ErrNoPeerCertificate = errors.New("no verified client certificate")

// PeerIdentity reads the identity of the gRPC peer in ctx from its TLS connection state. Only a
// certificate whose chain the TLS layer verified counts (credentials.TLSInfo.State.VerifiedChains);
// a peer on an insecure connection or one that presented no certificate yields ErrNoPeerCertificate.
func PeerIdentity(ctx context.Context, trustDomain string) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Identity{}, fmt.Errorf("peer identity: %w (no transport security)", ErrNoPeerCertificate)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("peer identity: %w (transport is %s, not TLS)", ErrNoPeerCertificate, p.AuthInfo.AuthType())
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, fmt.Errorf("peer identity: %w", ErrNoPeerCertificate)
	}
	id, err := FromCertificate(chains[0][0], trustDomain)
	if err != nil {
		return Identity{}, fmt.Errorf("peer identity: %w", err)
	}
	return id, nil
}
