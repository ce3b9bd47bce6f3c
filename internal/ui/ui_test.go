package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestServer builds a Server whose collector connection is never used by the tested paths.
func newTestServer(t *testing.T, token string) *Server {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := New(Options{Conn: conn, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The embedded htmx and uPlot files are exactly those scripts/ui-assets.sh fetched: the SHA256SUMS it
// writes is checked against the embedded bytes, and lists every embedded asset.
func TestAssetsMatchScript(t *testing.T) {
	sums, err := files.ReadFile("assets/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		b, err := files.ReadFile("assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("assets/%s: sha256 %x, SHA256SUMS says %s: rerun scripts/ui-assets.sh", name, got, sum)
		}
		listed[name] = true
	}
	entries, err := files.ReadDir("assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "SHA256SUMS" && !listed[e.Name()] {
			t.Errorf("assets/%s is embedded but not in SHA256SUMS", e.Name())
		}
	}
	script, err := os.ReadFile("../../scripts/ui-assets.sh")
	if err != nil || !strings.Contains(string(script), "sha256sum htmx.min.js uPlot.iife.min.js uPlot.min.css") {
		t.Fatalf("scripts/ui-assets.sh does not write the list this test reads: %v", err)
	}
}

// Every response, an error too, carries the CSP and nosniff headers.
func TestSecurityHeaders(t *testing.T) {
	s := newTestServer(t, "")
	for _, path := range []string{"/static/app.js", "/assets/htmx.min.js", "/nowhere"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Header().Get("Content-Security-Policy") != CSP || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, rec.Header())
		}
	}
	if !strings.Contains(CSP, "script-src 'self'") || strings.Contains(CSP, "unsafe") {
		t.Fatalf("CSP %q", CSP)
	}
}

// With a token, a request without it is refused, ?token= sets the cookie and redirects without it, and
// the cookie then lets requests through; a wrong token is refused.
func TestAccessToken(t *testing.T) {
	s := newTestServer(t, "s3cret")
	get := func(path string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		return rec
	}
	if rec := get("/static/app.js"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", rec.Code)
	}
	if rec := get("/static/app.js?token=wrong"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", rec.Code)
	}
	if rec := get("/static/app.js", &http.Cookie{Name: tokenCookie, Value: "s3cretX"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong cookie: %d", rec.Code)
	}
	rec := get("/static/app.js?token=s3cret&x=1")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/static/app.js?x=1" {
		t.Fatalf("?token=: %d %v", rec.Code, rec.Header())
	}
	var tok *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == tokenCookie {
			tok = c
		}
	}
	if tok == nil || !tok.HttpOnly || tok.SameSite != http.SameSiteStrictMode {
		t.Fatalf("token cookie %+v", tok)
	}
	if rec := get("/static/app.js", tok); rec.Code != http.StatusOK {
		t.Fatalf("with cookie: %d", rec.Code)
	}
}

// Admin actions: GET is refused, POST without the session's CSRF token or with another session's is
// refused before the collector is asked.
func TestCSRF(t *testing.T) {
	s := newTestServer(t, "")
	session := &http.Cookie{Name: sessionCookie, Value: "aaaa"}
	other := &http.Cookie{Name: sessionCookie, Value: "bbbb"}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/samples/x/relay", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET relay: %d", rec.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(other)
	otherToken := s.csrfToken(r)
	for name, form := range map[string]url.Values{"none": {}, "wrong": {"csrf": {"00"}}, "other session": {"csrf": {otherToken}}} {
		for _, action := range []string{"relay", "enrich"} {
			r := httptest.NewRequest(http.MethodPost, "/samples/x/"+action, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(session)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "needs a POST from this console") {
				t.Errorf("%s %s: %d %s", action, name, rec.Code, rec.Body)
			}
		}
	}
}

// Collector text is escaped by the templates: a flow name with markup appears as text.
func TestEscaping(t *testing.T) {
	s := newTestServer(t, "")
	const evil = `<img src=x onerror=alert(1)>.example`
	rec := httptest.NewRecorder()
	s.render(rec, http.StatusOK, "sample", map[string]any{"Title": "Sample " + evil,
		"Sample": &flowfleetv1.Sample{Id: "h_1", Host: "h", Summary: evil},
		"Q":      tableQuery{Filter: `"><script>alert(1)</script>`},
		"Flows":  []*flowfleetv1.Flow{{DstName: evil, Category: evil}},
		"Top":    chart{X: []float64{0}, Y: []float64{1}, Labels: []string{evil}}})
	body := rec.Body.String()
	if strings.Contains(body, "<img") || strings.Contains(body, "<script>alert") {
		t.Fatalf("unescaped markup in\n%s", body)
	}
	if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;.example") {
		t.Fatalf("escaped name missing in\n%s", body)
	}
}
