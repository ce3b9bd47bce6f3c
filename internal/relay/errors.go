package relay

import (
	"fmt"
	"strings"
	"time"
)

// Reason classifies a failed request. The values are metric label values.
type Reason string

// The reasons a request fails.
const (
	// ReasonAuth: 401 or 403, or an in-band error whose message ends in 403: the key is missing, wrong
	// or revoked. Permanent.
	ReasonAuth Reason = "auth"
	// ReasonRejected: the service refused the request (400, 404, another 4xx, or 200 with error true).
	// Permanent.
	ReasonRejected Reason = "rejected"
	// ReasonTooLarge: 413. Permanent.
	ReasonTooLarge Reason = "too_large"
	// ReasonRateLimited: 429. Retried, after Retry-After if given.
	ReasonRateLimited Reason = "rate_limited"
	// ReasonUnavailable: 503. Retried, after Retry-After if given.
	ReasonUnavailable Reason = "unavailable"
	// ReasonServerError: another 5xx. Retried; an upload may have been accepted.
	ReasonServerError Reason = "server_error"
	// ReasonTimeout: the request's deadline passed. Retried; an upload may have been accepted.
	ReasonTimeout Reason = "timeout"
	// ReasonNetwork: the connection failed or broke. Retried; an upload may have been accepted if the
	// request had been sent.
	ReasonNetwork Reason = "network"
	// ReasonBadResponse: 200 with a reply that is not the documented envelope (or no sampleId). Retried;
	// an upload may have been accepted.
	ReasonBadResponse Reason = "bad_response"
	// ReasonRedirect: the service answered with a redirect, which the client does not follow (the key
	// would go with it). Permanent.
	ReasonRedirect Reason = "redirect"
	// ReasonCanceled: the caller gave up (shutdown). Retried.
	ReasonCanceled Reason = "canceled"
)

// Error is a failed NetworkSage request. Its text never contains the API key.
type Error struct {
	// Op is the operation: "upload", "list uploads", "sample", "sample flows", "aggregated", "public
	// aggregated", "summary", "categorization", "request summary", "request categorization", "flow
	// count", "destination", "behavior" or "event".
	Op string
	// Reason classifies the failure.
	Reason Reason
	// Status is the HTTP status, or 0 when no response was read.
	Status int
	// Message is the server's message (the envelope's body) or the transport error, with the key
	// removed, control characters dropped and cut to 300 bytes.
	Message string
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
	// Sent reports that the whole request was written to the server, so that it may have acted on it.
	Sent bool

	err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("networksage ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d: ", e.Status)
	}
	b.WriteString(string(e.Reason))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the underlying transport or context error, if any (for errors.Is with
// context.DeadlineExceeded and the like).
func (e *Error) Unwrap() error { return e.err }

// Permanent reports a failure that retrying cannot fix.
func (e *Error) Permanent() bool {
	switch e.Reason {
	case ReasonAuth, ReasonRejected, ReasonTooLarge, ReasonRedirect:
		return true
	}
	return false
}

// Ambiguous reports, for an upload, that the service may have accepted it although the client did not
// see the acceptance: the request was sent and the reply was lost, late, or a 5xx other than 503.
func (e *Error) Ambiguous() bool {
	if !e.Sent {
		return false
	}
	switch e.Reason {
	case ReasonTimeout, ReasonNetwork, ReasonServerError, ReasonBadResponse, ReasonCanceled:
		return true
	}
	return false
}

// classifyStatus maps a non-200 status (or a 200 with error true, status 200) to a reason.
func classifyStatus(status int, message string) Reason {
	switch {
	case status == 401, status == 403:
		return ReasonAuth
	case status == 200 && strings.HasSuffix(strings.TrimSpace(message), "403"):
		// osintscrape's rule: an in-band error whose body ends in 403 is a bad key.
		return ReasonAuth
	case status == 413:
		return ReasonTooLarge
	case status == 429:
		return ReasonRateLimited
	case status == 503:
		return ReasonUnavailable
	case status >= 300 && status < 400:
		return ReasonRedirect
	case status >= 500:
		return ReasonServerError
	case status == 408:
		return ReasonTimeout
	}
	return ReasonRejected
}

// cleanMessage makes text from the network safe to log and store: the key removed, control characters
// dropped, at most 300 bytes.
func cleanMessage(key Secret, s string) string {
	s = key.Redact(s)
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		cut := 300
		for cut > 0 && (s[cut]&0xC0) == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
