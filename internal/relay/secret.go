package relay

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secret is an API key. Every way Go prints or encodes it (fmt verbs, slog, JSON, text) gives
// "[redacted]"; only Reveal returns the key, and only the request header uses it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the key itself.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so that no verb (%x, %q, …) prints the key.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Redact replaces every occurrence of the key in text (a server's message, a transport error) with
// "[redacted]". Keys shorter than 4 bytes are not searched for: they would match ordinary text, and
// no real key is that short.
func (s Secret) Redact(text string) string {
	if len(s) < 4 {
		return text
	}
	return strings.ReplaceAll(text, string(s), redacted)
}

// KeyFromFile reads an API key from a file: its content with surrounding white space trimmed. Errors
// name the file, never its content.
func KeyFromFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("NetworkSage API key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("NetworkSage API key file %s is empty", path)
	}
	if strings.ContainsAny(key, "\r\n\x00") {
		return "", fmt.Errorf("NetworkSage API key file %s holds more than one line", path)
	}
	return Secret(key), nil
}
