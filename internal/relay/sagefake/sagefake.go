// Package sagefake is a FAKE of the NetworkSage API (https://api.seclarity.io) as SeclarityIO's own
// clients document it (docs/networksage-api.md §6), for tests and for trying flowctl sage
// without an account. It is not NetworkSage: it analyses nothing, and it says so in its logs and in an
// X-Sagefake response header.
//
// What it does: the apikey header check (403 with the {error, body} envelope), multipart validation of
// uploads (400), a size cap (413), a new 32-hex sampleId for every accepted upload (no idempotency, so
// duplicates show), the uploads list and sample endpoints with a configurable processing delay, and
// every enrichment endpoint of API doc §4.4: a sample's flows (/list) and aggregated view, its summary
// and categorization (POST requests one, GET reads it), a flow's global count, a destination's
// metadata, behaviours, events, and the public aggregated view (no key). Faults can be injected per
// route: a status (429 with Retry-After, 5xx), 200 with error true, malformed JSON, a hang past the
// client's timeout, and a connection cut after the body was read; each can first accept the request (an
// upload is then stored although the client sees a failure). SetMismatchFlows makes /list disagree with
// the uploaded flows.
//
// # The rule
//
// Every enrichment value is computed from the uploaded flows by exported functions, so tests can
// predict it exactly:
//
//   - a flow's flowCategory is Category(dst): fake-malicious for a name ending in .bad.example, else by
//     port: fake-dns (53), fake-web-tls (443, 8443), fake-web (80, 8080), fake-mail (25, 465, 587, 993,
//     995), fake-other;
//   - its flowId is FlowID(src, dst, protocolInformation), its eventId EventID(category, flowId) (only
//     fake-malicious flows have one), its global count Count(flowId);
//   - a destination's metadata is Destination(name:port), a behaviour Behavior(flowId), an event
//     Event(eventId);
//   - a report's verdict and confidence are Verdict(categories of all flows), its summary text
//     ReportText(kind, categories), its details ReportDetails(categories).
//
// Reports: a GET before any POST answers status "failed" (none exists); a POST starts generation,
// which ends Options.ReportDelay later (counted from when the sample is processed, if that is later):
// until then GET answers status "pending", then "generated" with the document (verdict, confidence,
// summary, details) encoded as a string in body.summary (body.categorization) — or "failed" when
// SetFailReports (Options.FailReports) was on at the POST. A POST while one is pending or generated
// changes nothing; a POST after a failure starts again.
//
// Every request is recorded (headers, parts, bytes, status) for assertions. A Fake is an http.Handler:
// serve it with httptest.NewTLSServer, or with Serve on a listener. It is safe for concurrent use.
package sagefake

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultMaxUploadSize is the default size cap of an upload (API doc §7.5).
const DefaultMaxUploadSize = 10 << 20

// Types are the upload types the fake accepts.
var Types = []string{"pcap", "pcapng", "zeek", "secflow", "interflow"}

// Route names an endpoint.
type Route string

// The routes.
const (
	RouteUpload  Route = "upload"  // POST /upload/v1.0/uploader
	RouteList    Route = "list"    // GET /upload/v1.0/uploads/list
	RouteSample  Route = "sample"  // GET /sec/v1.0/samples/{id}
	RouteFlows   Route = "flows"   // GET /sec/v1.0/samples/{id}/list
	RouteUnknown Route = "unknown" // anything else

	RouteAggregated     Route = "aggregated"     // GET /sec/v1.0/samples/{id}/aggregated
	RouteSummary        Route = "summary"        // GET, POST /sec/v1.0/samples/{id}/summary
	RouteCategorization Route = "categorization" // GET, POST /sec/v1.0/samples/{id}/categorization
	RouteCount          Route = "count"          // GET /sec/v1.0/secflows/{flowId}/count
	RouteDestination    Route = "destination"    // GET /sec/v1.0/destinations/{name:port}
	RouteBehavior       Route = "behavior"       // GET /sec/v1.0/behaviors/{flowId}
	RouteEvent          Route = "event"          // GET /sec/v1.0/events/{eventId}
	RoutePublic         Route = "public"         // GET /public/v1.0/secflows/{publicUuid}/list/aggregated, no key
)

// Routes are all the routes of the API, in the order above.
var Routes = []Route{RouteUpload, RouteList, RouteSample, RouteFlows, RouteAggregated, RouteSummary,
	RouteCategorization, RouteCount, RouteDestination, RouteBehavior, RouteEvent, RoutePublic}

// Options configures a Fake.
type Options struct {
	// Keys are the accepted API keys; each is one account. At least one is required.
	Keys []string
	// MaxUploadSize caps an upload's body (default DefaultMaxUploadSize); larger → 413.
	MaxUploadSize int64
	// ProcessingDelay is how long after its upload a sample becomes processed (default 0: at once;
	// the real service takes 30–90 s).
	ProcessingDelay time.Duration
	// ReportDelay is how long a requested summary or categorization takes to generate (default 0).
	ReportDelay time.Duration
	// FailReports makes report generation end "failed" (SetFailReports switches it later).
	FailReports bool
	// MismatchFlows makes /list disagree with the uploaded flows (SetMismatchFlows switches it later).
	MismatchFlows bool
	// Private makes uploads private: no public uuid.
	Private bool
	// RejectWith200 answers bad requests with 200 and error true instead of 400.
	RejectWith200 bool
	// Log receives one line per request (default: discarded). Keys are never logged.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// FaultKind is a misbehaviour.
type FaultKind int

// The faults.
const (
	// FaultStatus answers Fault.Status with the error envelope, and Retry-After if set.
	FaultStatus FaultKind = iota + 1
	// FaultErrorTrue answers 200 with {"error": true, "body": Message}.
	FaultErrorTrue
	// FaultHang reads the request and then answers nothing until the client gives up (or HangFor
	// passes, then 504).
	FaultHang
	// FaultCut reads the request and then closes the connection without an answer.
	FaultCut
	// FaultMalformed answers 200 with Fault.Raw (default: a cut-off envelope), which is not JSON.
	FaultMalformed
)

func (k FaultKind) String() string {
	switch k {
	case FaultStatus:
		return "status"
	case FaultErrorTrue:
		return "error-true"
	case FaultHang:
		return "hang"
	case FaultCut:
		return "cut"
	case FaultMalformed:
		return "malformed"
	}
	return "none"
}

// Fault is one injected misbehaviour, used by one request of its route.
type Fault struct {
	Kind FaultKind
	// Status for FaultStatus (e.g. 429, 500, 503).
	Status int
	// RetryAfter is sent as the Retry-After header with FaultStatus, if not "".
	RetryAfter string
	// Message is the envelope's body (default: the status text).
	Message string
	// Accept first handles the request normally (an upload is stored) and then misbehaves: the client
	// cannot tell that it succeeded.
	Accept bool
	// HangFor bounds FaultHang (default 1 min).
	HangFor time.Duration
	// Raw is the body FaultMalformed sends (default DefaultMalformed).
	Raw string
}

// DefaultMalformed is the body FaultMalformed sends by default: an envelope cut off mid-way.
const DefaultMalformed = `{"error": false, "body": [{"sourceData": "10.`

// Part is one part of a recorded multipart body.
type Part struct {
	Name        string
	FileName    string
	ContentType string
	Header      textproto.MIMEHeader
	Data        []byte
}

// Request is a recorded request.
type Request struct {
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Route    Route
	Body     []byte // uploads only
	Parts    []Part // uploads with a readable multipart body
	// Status is the status answered; 0 when the fake hung or cut the connection.
	Status int
	// Fault is the fault applied, if any.
	Fault FaultKind
	// SampleID is the sample an accepted upload created.
	SampleID string
}

// Part returns the request's first part named name.
func (r *Request) Part(name string) (Part, bool) {
	for _, p := range r.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// Upload is an accepted upload.
type Upload struct {
	SampleID    string
	Key         string
	FileName    string
	PartName    string // the file part's filename
	Type        string
	Content     []byte
	Uploaded    time.Time
	TrafficDate string
	flows       []map[string]any
	reports     map[Route]*report // summary, categorization
}

// Fake is the fake service.
type Fake struct {
	o        Options
	log      *slog.Logger
	mu       sync.Mutex
	uploads  []*Upload
	byID     map[string]*Upload
	accounts map[string]string // key → account id
	requests []Request
	faults   map[Route][]Fault
	counts   map[string]int
	// failReports and mismatch are the switches of Options.FailReports and Options.MismatchFlows.
	failReports, mismatch bool
}

// New returns a fake. It panics without a key (a programming error in a test).
func New(o Options) *Fake {
	if len(o.Keys) == 0 {
		panic("sagefake: no API key")
	}
	if o.MaxUploadSize <= 0 {
		o.MaxUploadSize = DefaultMaxUploadSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Fake{o: o, log: log.With("fake", "sagefake"), byID: map[string]*Upload{}, accounts: map[string]string{},
		faults: map[Route][]Fault{}, counts: map[string]int{}, failReports: o.FailReports, mismatch: o.MismatchFlows}
	for _, k := range o.Keys {
		f.accounts[k] = newUUID()
	}
	return f
}

// Inject queues faults for the next requests of route, one fault per request, in order.
func (f *Fake) Inject(route Route, faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[route] = append(f.faults[route], faults...)
}

// Requests returns a copy of the recorded requests, in arrival order.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// RequestsTo returns the recorded requests of one route.
func (f *Fake) RequestsTo(route Route) []Request {
	var out []Request
	for _, r := range f.Requests() {
		if r.Route == route {
			out = append(out, r)
		}
	}
	return out
}

// Uploads returns the accepted uploads, in order.
func (f *Fake) Uploads() []Upload {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Upload, len(f.uploads))
	for i, u := range f.uploads {
		out[i] = *u
	}
	return out
}

// RequestCount returns how many requests came with key in the apikey header.
func (f *Fake) RequestCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

type envelope struct {
	Error bool `json:"error"`
	Body  any  `json:"body"`
}

// reply is a handled request's answer before faults.
type reply struct {
	status   int
	body     any
	isError  bool
	sampleID string
}

func errorReply(status int, msg string) reply { return reply{status: status, body: msg, isError: true} }

// route names a request's route, the id its path carries (path-unescaped, so a public id's "/" may be
// sent as %2F), and whether the method is the route's.
func (f *Fake) route(r *http.Request) (Route, string, bool) {
	get := r.Method == http.MethodGet
	switch r.URL.Path {
	case "/upload/v1.0/uploader":
		return RouteUpload, "", r.Method == http.MethodPost
	case "/upload/v1.0/uploads/list":
		return RouteList, "", get
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	for i, s := range seg {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return RouteUnknown, "", true
		}
		seg[i] = u
	}
	at := func(prefix ...string) bool {
		for i, p := range prefix {
			if p != "*" && seg[i] != p {
				return false
			}
		}
		return true
	}
	switch n := len(seg); {
	case n == 4 && at("sec", "v1.0", "samples"):
		return RouteSample, seg[3], get
	case n == 5 && at("sec", "v1.0", "samples"):
		switch seg[4] {
		case "list":
			return RouteFlows, seg[3], get
		case "aggregated":
			return RouteAggregated, seg[3], get
		case "summary":
			return RouteSummary, seg[3], get || r.Method == http.MethodPost
		case "categorization":
			return RouteCategorization, seg[3], get || r.Method == http.MethodPost
		}
	case n == 5 && at("sec", "v1.0", "secflows", "*", "count"):
		return RouteCount, seg[3], get
	case n == 4 && at("sec", "v1.0", "destinations"):
		return RouteDestination, seg[3], get
	case n == 4 && at("sec", "v1.0", "behaviors"):
		return RouteBehavior, seg[3], get
	case n == 4 && at("sec", "v1.0", "events"):
		return RouteEvent, seg[3], get
	case n == 6 && at("public", "v1.0", "secflows", "*", "list", "aggregated"):
		return RoutePublic, seg[3], get
	}
	return RouteUnknown, "", true
}

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Sagefake", "this is a fake NetworkSage API, for tests only")
	route, id, methodOK := f.route(r)
	key := r.Header.Get("apikey")
	rec := Request{Time: f.o.Now(), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Route: route}

	// The body of an upload is read whole (up to the cap) before anything is answered, so a client
	// always sees the answer rather than a reset while it is still writing.
	var body []byte
	tooLarge := false
	if route == RouteUpload {
		limit := f.o.MaxUploadSize + 64<<10 // multipart framing around the file
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			f.log.Warn("sagefake: reading the request body", "path", r.URL.Path, "err", err)
			return
		}
		if int64(len(body)) > limit {
			tooLarge = true
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 256<<20))
			body = nil
		}
		rec.Body = body
	}

	f.mu.Lock()
	f.counts[key]++
	var fault *Fault
	if q := f.faults[route]; len(q) > 0 {
		fault = &q[0]
		f.faults[route] = q[1:]
	}
	f.mu.Unlock()

	var rep reply
	if fault == nil || fault.Accept {
		rep = f.handle(route, id, methodOK, key, r, body, tooLarge, &rec)
	}
	if fault != nil {
		rec.Fault = fault.Kind
		switch fault.Kind {
		case FaultStatus:
			if fault.RetryAfter != "" {
				w.Header().Set("Retry-After", fault.RetryAfter)
			}
			msg := fault.Message
			if msg == "" {
				msg = http.StatusText(fault.Status)
			}
			rep = errorReply(fault.Status, msg)
		case FaultErrorTrue:
			msg := fault.Message
			if msg == "" {
				msg = "request failed"
			}
			rep = errorReply(http.StatusOK, msg)
		case FaultHang:
			f.finish(rec, 0, rep.sampleID)
			hang := fault.HangFor
			if hang <= 0 {
				hang = time.Minute
			}
			t := time.NewTimer(hang)
			defer t.Stop()
			select {
			case <-r.Context().Done():
				// The client gave up: answer nothing at all. A handler that simply returned would let
				// net/http send an empty 200, which a client still reading could take for a reply.
				panic(http.ErrAbortHandler)
			case <-t.C:
			}
			f.write(w, errorReply(http.StatusGatewayTimeout, "fake hang over"))
			return
		case FaultCut:
			f.finish(rec, 0, rep.sampleID)
			panic(http.ErrAbortHandler) // closes the connection (HTTP/1) or resets the stream (HTTP/2)
		case FaultMalformed:
			raw := fault.Raw
			if raw == "" {
				raw = DefaultMalformed
			}
			f.finish(rec, http.StatusOK, rep.sampleID)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, raw)
			return
		}
	}
	f.finish(rec, rep.status, rep.sampleID)
	f.write(w, rep)
}

func (f *Fake) finish(rec Request, status int, sampleID string) {
	rec.Status, rec.SampleID = status, sampleID
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	f.mu.Unlock()
	attrs := []any{"method", rec.Method, "path", rec.Path, "status", status}
	if rec.Fault != 0 {
		attrs = append(attrs, "fault", rec.Fault.String())
	}
	if sampleID != "" {
		attrs = append(attrs, "sample_id", sampleID)
	}
	f.log.Info("sagefake: FAKE NetworkSage request", attrs...)
}

func (f *Fake) write(w http.ResponseWriter, rep reply) {
	b, _ := json.Marshal(envelope{Error: rep.isError, Body: rep.body})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = w.Write(b)
}

// authorized checks the apikey header (and only it) in constant time.
func (f *Fake) authorized(key string) bool {
	if key == "" {
		return false
	}
	ok := false
	for _, k := range f.o.Keys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			ok = true
		}
	}
	return ok
}

func (f *Fake) badRequest(msg string) reply {
	if f.o.RejectWith200 {
		return errorReply(http.StatusOK, msg)
	}
	return errorReply(http.StatusBadRequest, msg)
}

func (f *Fake) handle(route Route, id string, methodOK bool, key string, r *http.Request, body []byte, tooLarge bool, rec *Request) reply {
	if route == RouteUnknown {
		return errorReply(http.StatusNotFound, "not found")
	}
	if !methodOK {
		return errorReply(http.StatusMethodNotAllowed, "method not allowed")
	}
	if route == RoutePublic {
		return f.public(id) // the public view takes no key
	}
	if !f.authorized(key) {
		return errorReply(http.StatusForbidden, "Request unauthorized: 403")
	}
	switch route {
	case RouteUpload:
		if tooLarge {
			return errorReply(http.StatusRequestEntityTooLarge, fmt.Sprintf("file too large: the limit is %d bytes", f.o.MaxUploadSize))
		}
		return f.upload(key, r, body, rec)
	case RouteList:
		return f.list(key)
	case RouteSample:
		return f.sample(key, id)
	case RouteFlows:
		return f.flows(key, id)
	case RouteAggregated:
		return f.aggregated(key, id)
	case RouteSummary, RouteCategorization:
		return f.report(key, id, route, r.Method == http.MethodPost)
	case RouteCount:
		return reply{status: http.StatusOK, body: Count(id)}
	case RouteDestination:
		return f.destination(id)
	case RouteBehavior:
		return reply{status: http.StatusOK, body: Behavior(id)}
	case RouteEvent:
		doc, ok := Event(id)
		if !ok {
			return errorReply(http.StatusNotFound, "event not found")
		}
		return reply{status: http.StatusOK, body: doc}
	}
	return errorReply(http.StatusNotFound, "not found")
}

func (f *Fake) upload(key string, r *http.Request, body []byte, rec *Request) reply {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return f.badRequest("the request must be multipart/form-data")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f.badRequest("malformed multipart body: " + err.Error())
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return f.badRequest("malformed multipart body: " + err.Error())
		}
		rec.Parts = append(rec.Parts, Part{Name: p.FormName(), FileName: p.FileName(),
			ContentType: p.Header.Get("Content-Type"), Header: p.Header, Data: data})
	}
	seen := map[string]int{}
	for _, p := range rec.Parts {
		seen[p.Name]++
	}
	for name, n := range seen {
		if n > 1 && (name == "file" || name == "type" || name == "fileName" || name == "zeekDnsFile") {
			return f.badRequest("duplicate field " + name)
		}
	}
	file, ok := rec.Part("file")
	if !ok || file.FileName == "" {
		return f.badRequest("missing file")
	}
	if len(file.Data) == 0 {
		return f.badRequest("empty file")
	}
	if int64(len(file.Data)) > f.o.MaxUploadSize {
		return errorReply(http.StatusRequestEntityTooLarge, fmt.Sprintf("file too large: the limit is %d bytes", f.o.MaxUploadSize))
	}
	typ, ok := rec.Part("type")
	if !ok {
		return f.badRequest("missing type")
	}
	t := string(typ.Data)
	valid := false
	for _, x := range Types {
		valid = valid || x == t
	}
	if !valid {
		return f.badRequest("invalid type " + fmt.Sprintf("%q", t))
	}
	if _, ok := rec.Part("zeekDnsFile"); ok && t != "zeek" {
		return f.badRequest("zeekDnsFile is only allowed with type zeek")
	}
	u := &Upload{SampleID: newHex(), Key: key, PartName: file.FileName, Type: t, Content: file.Data, Uploaded: f.o.Now().UTC()}
	u.FileName = file.FileName
	if fn, ok := rec.Part("fileName"); ok && len(fn.Data) > 0 {
		u.FileName = string(fn.Data)
	}
	if t == "secflow" {
		td, flows, err := parseSecflow(file.Data)
		if err != nil {
			return f.badRequest("invalid secflow file: " + err.Error())
		}
		u.TrafficDate, u.flows = td, flows
	}
	f.mu.Lock()
	f.uploads = append(f.uploads, u)
	f.byID[u.SampleID] = u
	acct := f.accounts[key]
	f.mu.Unlock()
	uuid := ""
	if !f.o.Private {
		uuid = base64.StdEncoding.EncodeToString([]byte(acct + "#hash#" + u.SampleID))
	}
	return reply{status: http.StatusOK, sampleID: u.SampleID, body: map[string]any{
		"sampleId": u.SampleID, "fileName": u.FileName, "uuid": uuid,
		"link": "https://networksage.seclarity.io/samples/" + u.SampleID,
	}}
}

// parseSecflow checks a secflow (or BayseFlow) file: a JSON object with string trafficDate, fileName
// and hash, and a flow array under flashes or BayseFlows (API doc §7.1).
func parseSecflow(b []byte) (string, []map[string]any, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", nil, errors.New("not a JSON object")
	}
	var td, fn, hash string
	for k, dst := range map[string]*string{"trafficDate": &td, "fileName": &fn, "hash": &hash} {
		raw, ok := doc[k]
		if !ok || json.Unmarshal(raw, dst) != nil {
			return "", nil, fmt.Errorf("%s must be a string", k)
		}
	}
	raw, ok := doc["flashes"]
	if !ok {
		raw, ok = doc["BayseFlows"]
	}
	if !ok {
		return "", nil, errors.New("no flashes or BayseFlows array")
	}
	var flows []map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers keep their written form ("1.0" stays "1.0")
	if err := dec.Decode(&flows); err != nil {
		return "", nil, errors.New("flashes/BayseFlows must be an array of objects")
	}
	return td, flows, nil
}

func (f *Fake) processed(u *Upload) (bool, time.Time) {
	at := u.Uploaded.Add(f.o.ProcessingDelay)
	return !f.o.Now().Before(at), at
}

func (f *Fake) list(key string) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	acct := f.accounts[key]
	out := []map[string]any{}
	for _, u := range f.uploads {
		if u.Key != key {
			continue
		}
		done, at := f.processed(u)
		e := map[string]any{
			"fileName":       u.FileName,
			"processed":      done,
			"fullS3FilePath": fmt.Sprintf("s3://networksage-fake-uploads/%s/date=%s/%s", acct, u.Uploaded.Format("2006-01-02T15:04:05.000000"), u.FileName),
			"dateCreated":    u.Uploaded.Format("02/01/2006 15:04:05"),
			"fileType":       u.Type,
			"uuid":           u.SampleID,
		}
		if done {
			e["dateProcessed"] = at.UTC().Format("2006-01-02T15:04:05.000000")
		}
		out = append(out, e)
	}
	return reply{status: http.StatusOK, body: out}
}

func (f *Fake) lookup(key, id string) (*Upload, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.byID[id]
	if u == nil || u.Key != key {
		return nil, ""
	}
	return u, f.accounts[key]
}

func (f *Fake) sample(key, id string) reply {
	u, acct := f.lookup(key, id)
	if u == nil {
		return errorReply(http.StatusNotFound, "sample not found")
	}
	if done, _ := f.processed(u); !done {
		return reply{status: http.StatusOK, body: map[string]any{}}
	}
	return reply{status: http.StatusOK, body: map[string]any{
		"id": acct, "hash": u.SampleID, "fileName": u.SampleID + ".sf",
		"dateCreated": u.Uploaded.Format("02/01/2006 15:04:05"), "trafficDate": u.TrafficDate,
	}}
}

func (f *Fake) flows(key, id string) reply {
	u, _ := f.lookup(key, id)
	if u == nil {
		return errorReply(http.StatusNotFound, "sample not found")
	}
	if done, _ := f.processed(u); !done {
		return reply{status: http.StatusOK, body: []map[string]any{}}
	}
	out := enriched(u)
	f.mu.Lock()
	mismatch := f.mismatch
	f.mu.Unlock()
	if mismatch {
		out = mismatched(out)
	}
	return reply{status: http.StatusOK, body: out}
}

func newHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newUUID() string {
	h := newHex()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
