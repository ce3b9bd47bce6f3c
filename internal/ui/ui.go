// Package ui is flowctl's local web console (flowctl ui). It is an HTTP server on the user's machine
// that talks to the collector over gRPC with the user's own reader or admin certificate, so the
// collector gains no browser-facing listener; the collector still decides what the certificate may do.
//
// Guarantees enforced here:
//   - Every page is rendered by html/template (contextual auto-escaping); flow names and other
//     collector data are never written as markup.
//   - Every response carries a Content-Security-Policy that allows only this server's own scripts and
//     styles (no inline script), and X-Content-Type-Options: nosniff.
//   - State-changing actions (re-relay, enrich) are POST only and need the session's CSRF token,
//     compared in constant time; GET on them is refused.
//   - With an access token (required by flowctl ui when listening off loopback) every request must
//     carry it, as ?token= once (then a cookie) — compared in constant time.
//   - Lists read from the collector are bounded: maxHosts hosts, maxChartSamples samples a chart,
//     maxSortFlows flows a sorted or filtered sample, cacheSize samples cached.
package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

//go:embed assets/*.js assets/*.css assets/SHA256SUMS templates/*.html static/*
var files embed.FS

// Bounds on what one page reads from the collector.
const (
	maxHosts        = 500     // hosts on the fleet page
	maxChartHosts   = 100     // hosts that get a per-host chart
	maxChartSamples = 1000    // samples in one chart (one ListSamples page)
	maxSortFlows    = 200_000 // flows fetched to sort or filter one sample; more are left out, and the page says so
	cacheSize       = 4       // whole samples kept for sorting and filtering
	pageSize        = 100     // flows a table page
	maxTopDest      = 15      // bars in the top-destinations chart
)

// CSP is the Content-Security-Policy of every response.
const CSP = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; style-src 'self'"

const (
	sessionCookie = "ffui_session"
	tokenCookie   = "ffui_token"
)

// Options configure a Server.
type Options struct {
	// Conn is the connection to the collector (made with the user's certificate).
	Conn grpc.ClientConnInterface
	// Token, if not empty, must be presented by every request (?token= once, then a cookie).
	Token string
	// Label returns a sample's .bf with each flow labelled with its category (flowctl samples get
	// --labeled); nil disables labeled downloads.
	Label func(ctx context.Context, id string, content []byte) ([]byte, error)
	// Timeout bounds one collector request (default 10s).
	Timeout time.Duration
	// Log receives errors; nil discards.
	Log *slog.Logger
}

// Server is the web console's http.Handler.
type Server struct {
	opt     Options
	fleet   flowfleetv1.FleetServiceClient
	samples flowfleetv1.SampleServiceClient
	tmpl    map[string]*template.Template
	csrfKey []byte
	cache   *lru
	mux     *http.ServeMux
}

// New builds a Server.
func New(opt Options) (*Server, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opt: opt, fleet: flowfleetv1.NewFleetServiceClient(opt.Conn), samples: flowfleetv1.NewSampleServiceClient(opt.Conn),
		tmpl: map[string]*template.Template{}, csrfKey: make([]byte, 32), cache: newLRU(cacheSize), mux: http.NewServeMux()}
	if _, err := rand.Read(s.csrfKey); err != nil {
		return nil, fmt.Errorf("csrf key: %w", err)
	}
	for _, page := range []string{"fleet", "host", "sample", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", page, err)
		}
		s.tmpl[page] = t
	}
	static, err := fs.Sub(files, ".")
	if err != nil {
		return nil, err
	}
	fsrv := http.FileServerFS(static)
	s.mux.Handle("GET /assets/", fsrv)
	s.mux.Handle("GET /static/", fsrv)
	s.mux.HandleFunc("GET /{$}", s.fleetPage)
	s.mux.HandleFunc("GET /hosts/{host}", s.hostPage)
	s.mux.HandleFunc("GET /samples/{id}", s.samplePage)
	s.mux.HandleFunc("GET /samples/{id}/content", s.content)
	s.mux.HandleFunc("POST /samples/{id}/relay", s.relay)
	s.mux.HandleFunc("POST /samples/{id}/enrich", s.enrich)
	s.mux.HandleFunc("GET /events", s.events)
	return s, nil
}

// ServeHTTP sets the security headers, checks the access token and the session, and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if s.opt.Token != "" {
		if q := r.URL.Query().Get("token"); q != "" && equal(q, s.opt.Token) {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.opt.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			u := *r.URL
			q := u.Query()
			q.Del("token")
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		c, err := r.Cookie(tokenCookie)
		if err != nil || !equal(c.Value, s.opt.Token) {
			http.Error(w, "access token required: open the URL flowctl ui printed", http.StatusUnauthorized)
			return
		}
	}
	if _, err := r.Cookie(sessionCookie); err != nil {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			http.Error(w, "session", http.StatusInternalServerError)
			return
		}
		c := &http.Cookie{Name: sessionCookie, Value: hex.EncodeToString(b), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}
		http.SetCookie(w, c)
		r.AddCookie(c)
	}
	s.mux.ServeHTTP(w, r)
}

// equal compares secrets in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// csrfToken is the session's CSRF token: an HMAC of its random session id under a per-process random key.
func (s *Server) csrfToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(c.Value))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether a POST carries its session's CSRF token.
func (s *Server) checkCSRF(r *http.Request) bool {
	want := s.csrfToken(r)
	return want != "" && equal(r.PostFormValue("csrf"), want)
}

// render writes a page; a template error is logged and answered with 500.
func (s *Server) render(w http.ResponseWriter, status int, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.tmpl[page].Execute(w, data); err != nil {
		s.opt.Log.Error("ui: render", "page", page, "err", err)
	}
}

// fail shows a collector error as a page, PermissionDenied explained.
func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	status, msg := explain(err)
	if status >= 500 {
		s.opt.Log.Error("ui: "+what, "err", err)
	}
	s.render(w, status, "error", map[string]any{"Title": what, "Message": msg})
}

func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opt.Timeout)
}

var errNotAllowed = errors.New("not allowed")
