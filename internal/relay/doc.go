// Package relay uploads the collector's samples to NetworkSage.
//
// It has two parts:
//
//   - Client speaks the NetworkSage API as SeclarityIO's own clients used it
//     (docs/networksage-api.md): the key goes in a header named apikey, replies are a JSON
//     envelope {"error": bool, "body": …}, and only HTTP 200 with error false is success. It uploads a
//     .bf file (POST /upload/v1.0/uploader), lists the account's uploads, and reads a sample's metadata
//     and enriched flows — and every other documented endpoint (endpoints.go): the aggregated view,
//     the summary and categorization (requested with POST), a flow's global count, a destination's
//     metadata, behaviours, events, and the public aggregated view, which is asked without the key.
//     Every reply is decoded defensively and bounded (see the constants in endpoints.go): the service
//     is outside the fleet's trust.
//   - Worker drains the store's durable outbox (store.Outbox): a sample is queued in the transaction
//     that records it, so a restart loses nothing. A bounded number of uploads run at once, each with
//     its own deadline; failures that may pass are retried with exponential backoff and jitter (or after
//     the server's Retry-After on 429 and 503), failures that cannot pass (400, 401, 403, 413, a 200
//     with error true) mark the sample relay_failed with the reason and keep it. After an attempt whose
//     outcome is unknown (the connection broke after the request was sent, a timeout, a 5xx other than
//     503), the worker looks for a same-named upload in the account's uploads list before it uploads
//     again, so that the service gets one copy.
//
// # The API key
//
// The key is a Secret: its String, GoString, Format, JSON and slog forms are "[redacted]", and every
// message that came from the server or the transport is scrubbed of the key before it reaches an error,
// a log line or the store. The client refuses plain http except to a loopback address, and it never
// follows a redirect (the key would go with it).
//
// # Concurrency
//
// A Client is safe for concurrent use. A Worker runs one Run at a time; Notify may be called from any
// goroutine. On PostgreSQL several collectors may run workers on one store: entries are claimed with
// FOR UPDATE SKIP LOCKED and a lease, so each is worked on by one worker at a time.
//
// Package sagefake is a fake of the documented API for tests and for trying flowctl sage.
package relay
