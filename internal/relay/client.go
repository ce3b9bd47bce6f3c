package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The documented API (docs/networksage-api.md §1, §4).
const (
	// DefaultBaseURL is NetworkSage's API.
	DefaultBaseURL = "https://api.seclarity.io"
	// DefaultType is the upload type FlowFleet sends: NetworkSage's streaming module always sent
	// secflow, and BayseFlow is its successor (API doc §7.1).
	DefaultType = "secflow"
	// DefaultTimeout bounds one request, and the fixed part of an upload's deadline.
	DefaultTimeout = 30 * time.Second
	// DefaultUploadRate is the slowest upload speed the upload deadline allows for beyond
	// DefaultTimeout, in bytes per second.
	DefaultUploadRate = 64 << 10

	uploadPath = "/upload/v1.0/uploader"
	listPath   = "/upload/v1.0/uploads/list"
	samplePath = "/sec/v1.0/samples/"

	maxReply       = 64 << 20 // list and flows replies
	maxUploadReply = 1 << 20
)

// Types are the upload types the documented clients send.
var Types = []string{"pcap", "pcapng", "zeek", "secflow", "interflow"}

// ClientOptions configures a Client.
type ClientOptions struct {
	// BaseURL is the API's base URL (default DefaultBaseURL). Plain http is refused except to a
	// loopback address (a test fake), since the key would travel in the clear.
	BaseURL string
	// APIKey is sent in the apikey header of every request. Required.
	APIKey Secret
	// Timeout bounds one request (default DefaultTimeout); an upload gets Timeout plus its size at
	// UploadRate.
	Timeout time.Duration
	// UploadRate is in bytes per second (default DefaultUploadRate).
	UploadRate int64
	// HTTPClient is the HTTP client to use (default: one with TLS 1.2 or later, proxies from the
	// environment). Its redirect policy is replaced: redirects are never followed.
	HTTPClient *http.Client
	// UserAgent is sent as User-Agent (default "flowfleet-relay").
	UserAgent string
}

// Client calls the NetworkSage API. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	key        Secret
	timeout    time.Duration
	uploadRate int64
	hc         *http.Client
	ua         string
}

// NewClient checks the options and returns a client.
func NewClient(o ClientOptions) (*Client, error) {
	if o.APIKey == "" {
		return nil, errors.New("networksage: no API key")
	}
	return newClient(o)
}

// NewPublicClient returns a client that may have no API key, for the public view
// (PublicAggregated), which takes none. Without a key every other call fails with ReasonAuth before
// anything is sent.
func NewPublicClient(o ClientOptions) (*Client, error) { return newClient(o) }

func newClient(o ClientOptions) (*Client, error) {
	if strings.ContainsAny(o.APIKey.Reveal(), "\r\n\x00") {
		return nil, errors.New("networksage: the API key contains a line break or NUL (check the key file)")
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	base, err := ParseBaseURL(o.BaseURL)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UploadRate <= 0 {
		o.UploadRate = DefaultUploadRate
	}
	if o.UserAgent == "" {
		o.UserAgent = "flowfleet-relay"
	}
	var hc http.Client
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		tr.TLSHandshakeTimeout = 10 * time.Second
		tr.MaxIdleConnsPerHost = 8
		hc.Transport = tr
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: base, key: o.APIKey, timeout: o.Timeout, uploadRate: o.UploadRate, hc: &hc, ua: o.UserAgent}, nil
}

// ParseBaseURL checks an API base URL: https, or http to a loopback address; no query, no user info.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("networksage URL %q: %w", s, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("networksage URL %q: want https://host[:port][/prefix]", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("networksage URL %q: plain http is allowed only to a loopback address (the API key would travel in the clear); use https", s)
		}
	default:
		return nil, fmt.Errorf("networksage URL %q: want https://…", s)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BaseURL returns the API base URL the client uses.
func (c *Client) BaseURL() string { return c.base.String() }

func (c *Client) endpoint(p string) string {
	u := *c.base
	u.Path = path.Join("/", c.base.Path, p)
	if strings.HasSuffix(p, "/") {
		u.Path += "/"
	}
	return u.String()
}

// envelope is every reply's shape (API doc §3).
type envelope struct {
	Error *bool           `json:"error"`
	Body  json.RawMessage `json:"body"`
}

// do sends one request with the apikey header and returns the envelope's body on HTTP 200 with error
// false; anything else is an *Error.
func (c *Client) do(ctx context.Context, op, method, urlStr, contentType string, body []byte, timeout time.Duration, limit int64) (json.RawMessage, error) {
	return c.send(ctx, op, method, urlStr, contentType, body, timeout, limit, true)
}

// send is do, with the apikey header only when withKey (the public view takes none).
func (c *Client) send(ctx context.Context, op, method, urlStr, contentType string, body []byte, timeout time.Duration, limit int64, withKey bool) (json.RawMessage, error) {
	if withKey && c.key == "" {
		return nil, &Error{Op: op, Reason: ReasonAuth, Message: "no API key"}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var sent atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
	})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, urlStr, rd)
	if err != nil {
		return nil, &Error{Op: op, Reason: ReasonRejected, Message: cleanMessage(c.key, err.Error()), err: err}
	}
	if withKey {
		req.Header.Set("apikey", c.key.Reveal())
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, op, err, sent.Load())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(ctx, op, err, true)
	}
	if int64(len(raw)) > limit {
		return nil, &Error{Op: op, Reason: ReasonBadResponse, Status: resp.StatusCode, Sent: true,
			Message: fmt.Sprintf("reply larger than %d bytes", limit)}
	}
	var env envelope
	envErr := json.Unmarshal(raw, &env)
	if resp.StatusCode != http.StatusOK {
		msg := string(raw)
		if envErr == nil && env.Body != nil {
			msg = bodyText(env.Body)
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			msg = "redirect to " + loc + " not followed"
		}
		return nil, &Error{Op: op, Reason: classifyStatus(resp.StatusCode, msg), Status: resp.StatusCode, Sent: true,
			Message: cleanMessage(c.key, msg), RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	if envErr != nil || env.Error == nil {
		return nil, &Error{Op: op, Reason: ReasonBadResponse, Status: resp.StatusCode, Sent: true,
			Message: cleanMessage(c.key, "reply is not the {error, body} envelope: "+string(raw))}
	}
	if *env.Error {
		msg := bodyText(env.Body)
		return nil, &Error{Op: op, Reason: classifyStatus(resp.StatusCode, msg), Status: resp.StatusCode, Sent: true,
			Message: cleanMessage(c.key, msg)}
	}
	return env.Body, nil
}

// transportError classifies an error from sending the request or reading the reply; ctx is the
// request's context.
func (c *Client) transportError(ctx context.Context, op string, err error, sent bool) *Error {
	reason := ReasonNetwork
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		reason = ReasonCanceled
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		reason = ReasonTimeout
	}
	return &Error{Op: op, Reason: reason, Sent: sent, Message: cleanMessage(c.key, err.Error()), err: err}
}

// bodyText renders an envelope body for an error message: a string as is, anything else as JSON.
func bodyText(b json.RawMessage) string {
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date. 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		if n > 86400*7 {
			n = 86400 * 7
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// UploadResult is the service's acknowledgement of an upload.
type UploadResult struct {
	// SampleID is the private sample id, lower-cased (API doc §7.2); every /sec/v1.0/samples call takes it.
	SampleID string
	// FileName, UUID (the public id, "" for a private account) and Link are returned by the service
	// when it sends them; nothing relies on them.
	FileName, UUID, Link string
}

// UploadTimeout is the deadline the client gives an upload of size bytes.
func (c *Client) UploadTimeout(size int) time.Duration {
	return c.timeout + time.Duration(int64(size)*int64(time.Second)/c.uploadRate)
}

// Upload sends a sample: POST /upload/v1.0/uploader, multipart/form-data with the text fields type and
// fileName and the file part file (filename = fileName, content type application/octet-stream), in
// the order Python requests writes them. typ "" means DefaultType.
func (c *Client) Upload(ctx context.Context, fileName string, content []byte, typ string) (*UploadResult, error) {
	if typ == "" {
		typ = DefaultType
	}
	body, contentType, err := uploadBody(fileName, content, typ)
	if err != nil {
		return nil, &Error{Op: "upload", Reason: ReasonRejected, Message: err.Error(), err: err}
	}
	raw, err := c.do(ctx, "upload", http.MethodPost, c.endpoint(uploadPath), contentType, body, c.UploadTimeout(len(content)), maxUploadReply)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, &Error{Op: "upload", Reason: ReasonBadResponse, Status: 200, Sent: true,
			Message: cleanMessage(c.key, "body is not an object: "+string(raw))}
	}
	res := &UploadResult{}
	for k, v := range fields {
		var s string
		if json.Unmarshal(v, &s) != nil {
			continue
		}
		switch {
		case strings.EqualFold(k, "sampleId"):
			res.SampleID = strings.ToLower(strings.TrimSpace(s))
		case strings.EqualFold(k, "fileName"):
			res.FileName = s
		case strings.EqualFold(k, "uuid"):
			res.UUID = s
		case strings.EqualFold(k, "link"):
			res.Link = s
		}
	}
	if res.SampleID == "" {
		return nil, &Error{Op: "upload", Reason: ReasonBadResponse, Status: 200, Sent: true,
			Message: cleanMessage(c.key, "no sampleId in the reply: "+string(raw))}
	}
	return res, nil
}

func uploadBody(fileName string, content []byte, typ string) ([]byte, string, error) {
	if fileName == "" || strings.ContainsAny(fileName, "/\\\r\n\"") {
		return nil, "", fmt.Errorf("bad file name %q", fileName)
	}
	var buf bytes.Buffer
	buf.Grow(len(content) + 1024)
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("type", typ); err != nil {
		return nil, "", err
	}
	if err := mw.WriteField("fileName", fileName); err != nil {
		return nil, "", err
	}
	fw, err := mw.CreateFormFile("file", fileName)
	if err != nil {
		return nil, "", err
	}
	if _, err := fw.Write(content); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

// Upload is one entry of the account's uploads list (API doc §4.2). Its fields are cut to MaxText bytes.
type Upload struct {
	FileName       string `json:"fileName"`
	Processed      bool   `json:"-"`
	FullS3FilePath string `json:"fullS3FilePath"`
	DateCreated    string `json:"dateCreated"`
	DateProcessed  string `json:"dateProcessed,omitempty"`
	FileType       string `json:"fileType"`
	// UUID is the private sample id (the same value as an upload's sampleId).
	UUID string `json:"uuid"`
}

// UnmarshalJSON reads an upload, accepting processed as a boolean or a "true"/"false" string (API doc §7.8).
func (u *Upload) UnmarshalJSON(b []byte) error {
	type plain Upload
	var x struct {
		plain
		Processed any `json:"processed"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*u = Upload(x.plain)
	for _, p := range []*string{&u.FileName, &u.FullS3FilePath, &u.DateCreated, &u.DateProcessed, &u.FileType, &u.UUID} {
		*p = clip(*p, MaxText)
	}
	switch p := x.Processed.(type) {
	case bool:
		u.Processed = p
	case string:
		u.Processed = strings.EqualFold(strings.TrimSpace(p), "true")
	}
	return nil
}

// MarshalJSON writes processed as a boolean.
func (u Upload) MarshalJSON() ([]byte, error) {
	type plain Upload
	return json.Marshal(struct {
		plain
		Processed bool `json:"processed"`
	}{plain(u), u.Processed})
}

var s3Date = regexp.MustCompile(`date=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?)/`)

// UploadedAt is when the upload was received, in UTC (the zone-less times of API doc §7.12 read as UTC): from
// the date= segment of fullS3FilePath, else from dateCreated. ok is false when neither parses.
func (u *Upload) UploadedAt() (t time.Time, ok bool) {
	if m := s3Date.FindStringSubmatch(u.FullS3FilePath); m != nil {
		if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", m[1], time.UTC); err == nil {
			return t, true
		}
	}
	if t, err := time.ParseInLocation("02/01/2006 15:04:05", strings.TrimSpace(u.DateCreated), time.UTC); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// ListUploads lists the account's uploads: GET /upload/v1.0/uploads/list.
func (c *Client) ListUploads(ctx context.Context) ([]Upload, error) {
	raw, err := c.do(ctx, "list uploads", http.MethodGet, c.endpoint(listPath), "", nil, c.timeout, maxReply)
	if err != nil {
		return nil, err
	}
	out, err := DecodeUploads(raw)
	if err != nil {
		return nil, &Error{Op: "list uploads", Reason: ReasonBadResponse, Status: 200, Sent: true,
			Message: cleanMessage(c.key, "body is not a list of uploads: "+err.Error())}
	}
	return out, nil
}

// FindUpload looks in the uploads list for fileName uploaded at or after since (less a minute for clock
// skew, the wrappers' own matching slack). An upload whose time cannot be read matches on its name
// alone: one copy too few is cheaper to notice than one too many. The latest match wins.
func (c *Client) FindUpload(ctx context.Context, fileName string, since time.Time) (*Upload, error) {
	list, err := c.ListUploads(ctx)
	if err != nil {
		return nil, err
	}
	var best *Upload
	var bestAt time.Time
	for i := range list {
		u := &list[i]
		if u.FileName != fileName {
			continue
		}
		at, ok := u.UploadedAt()
		if ok && at.Before(since.Add(-time.Minute)) {
			continue
		}
		if best == nil || at.After(bestAt) {
			best, bestAt = u, at
		}
	}
	return best, nil
}

// SampleInfo is a private sample's metadata (API doc §4.3).
type SampleInfo struct {
	ID          string `json:"id,omitempty"`
	Hash        string `json:"hash,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	DateCreated string `json:"dateCreated,omitempty"`
	TrafficDate string `json:"trafficDate,omitempty"`
	// Processed: the body was not empty and trafficDate is set.
	Processed bool `json:"processed"`
}

// PublicID is the sample's public identifier: base64 of "<id>#hash#<hash>" (API doc §4.3), or "" when
// id or hash is missing.
func (s *SampleInfo) PublicID() string {
	if s.ID == "" || s.Hash == "" {
		return ""
	}
	return base64Std(s.ID + "#hash#" + s.Hash)
}

// Sample reads a sample's metadata: GET /sec/v1.0/samples/{sampleId}.
func (c *Client) Sample(ctx context.Context, sampleID string) (*SampleInfo, error) {
	if sampleID == "" {
		return nil, &Error{Op: "sample", Reason: ReasonRejected, Message: "empty sample id"}
	}
	raw, err := c.do(ctx, "sample", http.MethodGet, c.endpoint(samplePath)+url.PathEscape(sampleID), "", nil, c.timeout, maxUploadReply)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return &SampleInfo{}, nil // an empty or odd body: not processed yet
	}
	info := &SampleInfo{}
	str := func(k string) string {
		var s string
		if v, ok := fields[k]; ok {
			if json.Unmarshal(v, &s) != nil {
				s = strings.Trim(string(v), `"`)
			}
		}
		return clip(s, MaxText)
	}
	info.ID, info.Hash, info.FileName = str("id"), str("hash"), str("fileName")
	info.DateCreated, info.TrafficDate = str("dateCreated"), str("trafficDate")
	info.Processed = len(fields) > 0 && info.TrafficDate != ""
	return info, nil
}

// Text is a string field that the service may also send as a number.
type Text string

// UnmarshalJSON accepts a string, a number, a boolean or null (as ""); an object or a list is an error.
func (t *Text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = Text(s)
		return nil
	}
	if string(b) == "null" {
		*t = ""
		return nil
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] == '{' || b[0] == '[' {
		return fmt.Errorf("want a string or a number, got %.20s", b)
	}
	*t = Text(strings.TrimSpace(string(b)))
	return nil
}

// Secflow is one enriched flow of a sample (API doc §4.4).
type Secflow struct {
	SourceData            Text `json:"sourceData"`
	DestinationData       Text `json:"destinationData"`
	DestinationNameSource Text `json:"destinationNameSource"`
	SourcePackets         Text `json:"sourcePackets"`
	SourceBytes           Text `json:"sourceBytes"`
	DestinationPackets    Text `json:"destinationPackets"`
	DestinationBytes      Text `json:"destinationBytes"`
	RelativeStart         Text `json:"relativeStart"`
	Duration              Text `json:"duration"`
	FlowCategory          Text `json:"flowCategory"`
	FlowID                Text `json:"flowId"`
	EventID               Text `json:"eventId,omitempty"`
}

// SampleFlows lists a sample's enriched flows: GET /sec/v1.0/samples/{sampleId}/list.
func (c *Client) SampleFlows(ctx context.Context, sampleID string) ([]Secflow, error) {
	if sampleID == "" {
		return nil, &Error{Op: "sample flows", Reason: ReasonRejected, Message: "empty sample id"}
	}
	raw, err := c.do(ctx, "sample flows", http.MethodGet, c.endpoint(samplePath)+url.PathEscape(sampleID)+"/list", "", nil, c.timeout, maxReply)
	if err != nil {
		return nil, err
	}
	out, err := DecodeSecflows(raw)
	if err != nil {
		return nil, &Error{Op: "sample flows", Reason: ReasonBadResponse, Status: 200, Sent: true,
			Message: cleanMessage(c.key, "body is not a list of flows: "+err.Error())}
	}
	return out, nil
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
