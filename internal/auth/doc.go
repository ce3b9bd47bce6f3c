// Package auth turns a verified client certificate into an Identity and decides, per gRPC method,
// which roles may call it. It owns FlowFleet's identity rules; internal/pki issues certificates that
// follow them.
//
// # Identity
//
// Every FlowFleet certificate carries exactly one URI SAN of the form
//
//	spiffe://<trust-domain>/<role>/<name>
//
// where role is one of sensor, reader, admin or collector, and name is 1–253 characters of
// [A-Za-z0-9._-] (not "." or ".."). A sensor's host name is the name of its certificate, never a field
// it sends. The trust domain (default "flowfleet.local") is configured on both ends; a certificate of
// another trust domain is refused even when its CA is trusted.
//
// # Usage
//
// A server (the collector):
//
//  1. Build transport credentials with NewServerCredentials (or ServerTLSConfig). They require a client
//     certificate, verify it against the CA bundle, and reload the server certificate, key and CA
//     bundle when their files change, at the next handshake, without a restart.
//  2. Create an Authorizer with NewAuthorizer(trustDomain, DefaultPolicy(), logger) and install its
//     UnaryServerInterceptor and StreamServerInterceptor first in the chain (before validation and
//     logging), so a caller without a valid identity learns nothing else.
//  3. In handlers, FromContext(ctx) returns the caller's Identity.
//
// A client (sensor, flowctl): build credentials with NewClientCredentials (or ClientTLSConfig); they
// present the client certificate, verify the server against the CA bundle and the dialled host name,
// and also pick up rotated files.
//
// # Errors a caller sees
//
//   - A certificate that does not chain to the CA, is expired or not yet valid, or lacks the right
//     extended key usage fails the TLS handshake: the RPC fails with codes.Unavailable.
//   - A chain that verifies but carries no usable identity (no spiffe URI SAN, several, another trust
//     domain, unknown role, bad name): codes.Unauthenticated.
//   - A valid identity whose role the method does not allow: codes.PermissionDenied, naming the roles
//     it requires.
//
// # Concurrency
//
// Authorizer, Policy (once built) and the TLS configs are safe for concurrent use. Reloading happens
// under a mutex during handshakes; a file that fails to load (for instance half-written) leaves the
// previous material in use and is logged, and is tried again at the next handshake.
package auth
