package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The service is outside the fleet's trust, so every decoder below bounds what it keeps (API doc §4.4):
//
//   - a reply is read up to maxReply (lists) or maxSmallReply (one object) bytes, else bad_response;
//   - a list holds at most MaxListItems elements, else bad_response (decoded one element at a time, so
//     a reply of many tiny elements cannot allocate more than that);
//   - a JSON document kept as is (a report's details, a behaviour, an event) is at most MaxDocument
//     bytes, else bad_response: JSON cannot be cut and stay JSON;
//   - a text field is cut (at a UTF-8 boundary) to MaxText bytes, a report's or a destination's prose
//     to MaxProse bytes, and a destination keeps at most MaxTags tags;
//   - a string field may come as a string, a number, a boolean or null (Text); a count as a number or
//     a numeric string.
//
// Malformed JSON, a body of the wrong shape or a value out of range is an *Error with
// ReasonBadResponse whose Op names the endpoint.
const (
	// MaxListItems caps the elements of a list reply (flows, aggregated, uploads).
	MaxListItems = 1_000_000
	// MaxDocument caps a JSON document kept as is.
	MaxDocument = 64 << 10
	// MaxText caps a short text field (ids, categories, verdicts, names, tags, a flow's fields).
	MaxText = 1 << 10
	// MaxProse caps a summary, a title, a description or a relevance.
	MaxProse = 16 << 10
	// MaxTags caps a destination's tags.
	MaxTags = 256

	maxSmallReply = 1 << 20 // one object: a sample, a report, a destination, a behaviour, an event

	publicPath = "/public/v1.0/secflows/"
	secflowsV1 = "/sec/v1.0/secflows/"
	destPath   = "/sec/v1.0/destinations/"
	behPath    = "/sec/v1.0/behaviors/"
	eventPath  = "/sec/v1.0/events/"
)

// ReportKind names a generated report of a sample.
type ReportKind string

// The reports a sample has.
const (
	ReportSummary        ReportKind = "summary"
	ReportCategorization ReportKind = "categorization"
)

// Report statuses as the service sends them.
const (
	ReportGenerated = "generated"
	ReportFailed    = "failed"
)

// Report is a sample's summary or categorization (API doc §4.4).
type Report struct {
	// Status is as sent: ReportGenerated, ReportFailed (none exists, or generation failed), or
	// anything else (not ready yet).
	Status string
	// Verdict, Confidence and Summary come from the JSON document the service encodes as a string in
	// body.summary (body.categorization); empty unless the document was there.
	Verdict, Confidence, Summary string
	// Details is the document's details, at most MaxDocument bytes; nil when absent or null.
	Details json.RawMessage
}

// DestinationInfo is what the community knows about a destination (API doc §4.4).
type DestinationInfo struct {
	Name, Title, Description, Relevance string
	Tags                                []string
}

// Aggregate is one element of a sample's aggregated view: {secflow, destination, behavior, event,
// flowIdCount}.
type Aggregate struct {
	Secflow     Secflow
	Destination *DestinationInfo
	// Behavior and Event are the documents as sent (at most MaxDocument bytes each); nil when absent
	// or null.
	Behavior, Event json.RawMessage
	// FlowIDCount is how many samples globally hold the flow.
	FlowIDCount int64
}

func (k ReportKind) valid() bool { return k == ReportSummary || k == ReportCategorization }

// badResponse is the error of a reply that does not decode.
func (c *Client) badResponse(op, format string, args ...any) *Error {
	return &Error{Op: op, Reason: ReasonBadResponse, Status: http.StatusOK, Sent: true,
		Message: cleanMessage(c.key, fmt.Sprintf(format, args...))}
}

func rejected(op, format string, args ...any) *Error {
	return &Error{Op: op, Reason: ReasonRejected, Message: fmt.Sprintf(format, args...)}
}

// checkID refuses an empty or oversized identifier before anything is sent.
func checkID(op, what, id string) *Error {
	if id == "" {
		return rejected(op, "empty %s", what)
	}
	if len(id) > MaxText {
		return rejected(op, "%s longer than %d bytes", what, MaxText)
	}
	return nil
}

// RequestReport asks the service to generate a sample's report: POST
// /sec/v1.0/samples/{sampleId}/summary (or /categorization) with an empty body.
func (c *Client) RequestReport(ctx context.Context, sampleID string, kind ReportKind) error {
	op := "request " + string(kind)
	if !kind.valid() {
		return rejected("request report", "unknown report kind %q", kind)
	}
	if err := checkID(op, "sample id", sampleID); err != nil {
		return err
	}
	_, err := c.do(ctx, op, http.MethodPost, c.endpoint(samplePath)+url.PathEscape(sampleID)+"/"+string(kind), "", nil, c.timeout, maxSmallReply)
	return err
}

// Report reads a sample's report: GET /sec/v1.0/samples/{sampleId}/summary (or /categorization).
func (c *Client) Report(ctx context.Context, sampleID string, kind ReportKind) (*Report, error) {
	op := string(kind)
	if !kind.valid() {
		return nil, rejected("report", "unknown report kind %q", kind)
	}
	if err := checkID(op, "sample id", sampleID); err != nil {
		return nil, err
	}
	raw, err := c.do(ctx, op, http.MethodGet, c.endpoint(samplePath)+url.PathEscape(sampleID)+"/"+string(kind), "", nil, c.timeout, maxSmallReply)
	if err != nil {
		return nil, err
	}
	rep, derr := DecodeReport(raw, kind)
	if derr != nil {
		return nil, c.badResponse(op, "%v", derr)
	}
	return rep, nil
}

// DecodeReport decodes the body of a report reply: {status, summary|categorization}, where the second
// is a JSON document (verdict, confidence, summary, details) encoded as a string (an object is taken
// too). A generated report must carry a readable document; for any other status it is read if it is
// there and readable.
func DecodeReport(body json.RawMessage, kind ReportKind) (*Report, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, errors.New("body is not an object")
	}
	var status Text
	if v, ok := fields["status"]; ok {
		if err := json.Unmarshal(v, &status); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
	}
	rep := &Report{Status: clip(string(status), MaxText)}
	doc, err := reportDocument(fields[string(kind)])
	if err != nil {
		if rep.Status == ReportGenerated {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		return rep, nil
	}
	if doc == nil {
		if rep.Status == ReportGenerated {
			return nil, fmt.Errorf("a generated report without its %s document", kind)
		}
		return rep, nil
	}
	var d struct {
		Verdict    Text            `json:"verdict"`
		Confidence Text            `json:"confidence"`
		Summary    Text            `json:"summary"`
		Details    json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		if rep.Status == ReportGenerated {
			return nil, fmt.Errorf("%s document: %w", kind, err)
		}
		return rep, nil
	}
	rep.Verdict, rep.Confidence = clip(string(d.Verdict), MaxText), clip(string(d.Confidence), MaxText)
	rep.Summary = clip(string(d.Summary), MaxProse)
	if rep.Details, err = document(d.Details); err != nil {
		return nil, fmt.Errorf("%s details: %w", kind, err)
	}
	return rep, nil
}

// reportDocument unwraps a report document: a string holding a JSON object, or the object itself.
// nil when absent, null or an empty string.
func reportDocument(v json.RawMessage) (json.RawMessage, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return nil, nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		v = json.RawMessage(s)
	}
	if !json.Valid(v) || bytes.TrimSpace(v)[0] != '{' {
		return nil, errors.New("the document is not a JSON object")
	}
	return v, nil
}

// document keeps a JSON value as is, bounded: nil for absent or null, an error above MaxDocument.
func document(v json.RawMessage) (json.RawMessage, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return nil, nil
	}
	if len(v) > MaxDocument {
		return nil, fmt.Errorf("document of %d bytes, more than %d", len(v), MaxDocument)
	}
	if !json.Valid(v) {
		return nil, errors.New("document is not JSON")
	}
	return append(json.RawMessage(nil), v...), nil
}

// DecodeDocument decodes the body of a behaviour or event reply: any JSON value, kept as is, at most
// MaxDocument bytes; nil for null.
func DecodeDocument(body json.RawMessage) (json.RawMessage, error) { return document(body) }

// DecodeUploads decodes the body of GET /upload/v1.0/uploads/list.
func DecodeUploads(body json.RawMessage) ([]Upload, error) {
	return decodeList[Upload](body, MaxListItems)
}

// clip cuts s to at most n bytes at a UTF-8 boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// decodeList decodes a JSON list (null or empty: no elements) one element at a time, refusing more
// than max elements.
func decodeList[T any](body json.RawMessage, limit int) ([]T, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, errors.New("body is not a list")
	}
	var out []T
	for dec.More() {
		if len(out) == limit {
			return nil, fmt.Errorf("more than %d elements", limit)
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("element %d: %w", len(out), err)
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return nil, errors.New("data after the list")
	}
	return out, nil
}

// bound cuts every field of a flow to MaxText bytes.
func (f *Secflow) bound() {
	for _, p := range []*Text{&f.SourceData, &f.DestinationData, &f.DestinationNameSource, &f.SourcePackets,
		&f.SourceBytes, &f.DestinationPackets, &f.DestinationBytes, &f.RelativeStart, &f.Duration,
		&f.FlowCategory, &f.FlowID, &f.EventID} {
		*p = Text(clip(string(*p), MaxText))
	}
}

// DecodeSecflows decodes the body of GET /sec/v1.0/samples/{id}/list.
func DecodeSecflows(body json.RawMessage) ([]Secflow, error) {
	out, err := decodeList[Secflow](body, MaxListItems)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].bound()
	}
	return out, nil
}

// UnmarshalJSON reads destination metadata: an object whose text fields may be strings or numbers,
// and tags a list or one comma-separated string; bounded as the package says.
func (d *DestinationInfo) UnmarshalJSON(b []byte) error {
	var x struct {
		Name        Text            `json:"name"`
		Title       Text            `json:"title"`
		Description Text            `json:"description"`
		Relevance   Text            `json:"relevance"`
		Tags        json.RawMessage `json:"tags"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*d = DestinationInfo{Name: clip(string(x.Name), MaxText), Title: clip(string(x.Title), MaxProse),
		Description: clip(string(x.Description), MaxProse), Relevance: clip(string(x.Relevance), MaxProse)}
	tags := bytes.TrimSpace(x.Tags)
	if len(tags) == 0 || string(tags) == "null" {
		return nil
	}
	var list []Text
	if tags[0] == '[' {
		l, err := decodeList[Text](tags, MaxTags)
		if err != nil {
			return fmt.Errorf("tags: %w", err)
		}
		list = l
	} else {
		var one Text
		if err := json.Unmarshal(tags, &one); err != nil {
			return fmt.Errorf("tags: %w", err)
		}
		for _, t := range strings.Split(string(one), ",") {
			list = append(list, Text(strings.TrimSpace(t)))
		}
	}
	for _, t := range list {
		if t != "" && len(d.Tags) < MaxTags {
			d.Tags = append(d.Tags, clip(string(t), MaxText))
		}
	}
	return nil
}

// UnmarshalJSON reads one element of an aggregated view, bounded as the package says.
func (a *Aggregate) UnmarshalJSON(b []byte) error {
	var x struct {
		Secflow     *Secflow         `json:"secflow"`
		Destination *DestinationInfo `json:"destination"`
		Behavior    json.RawMessage  `json:"behavior"`
		Event       json.RawMessage  `json:"event"`
		FlowIDCount json.RawMessage  `json:"flowIdCount"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*a = Aggregate{Destination: x.Destination}
	if x.Secflow != nil {
		a.Secflow = *x.Secflow
		a.Secflow.bound()
	}
	var err error
	if a.Behavior, err = document(x.Behavior); err != nil {
		return fmt.Errorf("behavior: %w", err)
	}
	if a.Event, err = document(x.Event); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if len(bytes.TrimSpace(x.FlowIDCount)) > 0 && string(bytes.TrimSpace(x.FlowIDCount)) != "null" {
		if a.FlowIDCount, err = DecodeCount(x.FlowIDCount); err != nil {
			return fmt.Errorf("flowIdCount: %w", err)
		}
	}
	return nil
}

// DecodeAggregated decodes the body of an aggregated view (private or public).
func DecodeAggregated(body json.RawMessage) ([]Aggregate, error) {
	return decodeList[Aggregate](body, MaxListItems)
}

// DecodeCount decodes a count: a non-negative integer, as a number or a numeric string.
func DecodeCount(body json.RawMessage) (int64, error) {
	var t Text
	if err := json.Unmarshal(body, &t); err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(t))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 3.0 or 3e2 from a JSON number written as a float.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) || f > 1<<53 {
			return 0, fmt.Errorf("count %q is not an integer", clip(s, 64))
		}
		n = int64(f)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative count %d", n)
	}
	return n, nil
}

// DecodeDestination decodes the body of GET /sec/v1.0/destinations/{name:port}.
func DecodeDestination(body json.RawMessage) (*DestinationInfo, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, errors.New("body is not an object")
	}
	d := &DestinationInfo{}
	if err := json.Unmarshal(body, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Aggregated reads a sample's aggregated view: GET /sec/v1.0/samples/{sampleId}/aggregated.
func (c *Client) Aggregated(ctx context.Context, sampleID string) ([]Aggregate, error) {
	const op = "aggregated"
	if err := checkID(op, "sample id", sampleID); err != nil {
		return nil, err
	}
	raw, err := c.do(ctx, op, http.MethodGet, c.endpoint(samplePath)+url.PathEscape(sampleID)+"/aggregated", "", nil, c.timeout, maxReply)
	if err != nil {
		return nil, err
	}
	out, derr := DecodeAggregated(raw)
	if derr != nil {
		return nil, c.badResponse(op, "body is not an aggregated list: %v", derr)
	}
	return out, nil
}

// PublicAggregated reads a public sample's aggregated view: GET
// /public/v1.0/secflows/{publicUuid}/list/aggregated, without the apikey header.
func (c *Client) PublicAggregated(ctx context.Context, publicID string) ([]Aggregate, error) {
	const op = "public aggregated"
	if err := checkID(op, "public id", publicID); err != nil {
		return nil, err
	}
	raw, err := c.send(ctx, op, http.MethodGet, c.endpoint(publicPath)+url.PathEscape(publicID)+"/list/aggregated", "", nil, c.timeout, maxReply, false)
	if err != nil {
		return nil, err
	}
	out, derr := DecodeAggregated(raw)
	if derr != nil {
		return nil, c.badResponse(op, "body is not an aggregated list: %v", derr)
	}
	return out, nil
}

// FlowCount reads how many samples globally hold a flow: GET /sec/v1.0/secflows/{flowId}/count.
func (c *Client) FlowCount(ctx context.Context, flowID string) (int64, error) {
	const op = "flow count"
	if err := checkID(op, "flow id", flowID); err != nil {
		return 0, err
	}
	raw, err := c.do(ctx, op, http.MethodGet, c.endpoint(secflowsV1)+url.PathEscape(flowID)+"/count", "", nil, c.timeout, maxSmallReply)
	if err != nil {
		return 0, err
	}
	n, derr := DecodeCount(raw)
	if derr != nil {
		return 0, c.badResponse(op, "%v", derr)
	}
	return n, nil
}

// SplitDestination checks a destination as the service names it, NAME:PORT (or IP:PORT; an IPv6
// address may be bracketed), and returns its name and port. The port is mandatory (API doc §4.4).
func SplitDestination(nameAndPort string) (string, int, error) {
	if len(nameAndPort) > MaxText {
		return "", 0, fmt.Errorf("destination longer than %d bytes", MaxText)
	}
	i := strings.LastIndexByte(nameAndPort, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("destination %q: want NAME:PORT (the port is mandatory)", nameAndPort)
	}
	name, ps := nameAndPort[:i], nameAndPort[i+1:]
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 || ps[0] == '+' || ps[0] == '0' {
		return "", 0, fmt.Errorf("destination %q: port %q is not 1-65535", nameAndPort, ps)
	}
	if name == "" || strings.ContainsAny(name, "/?#% \t\r\n") {
		return "", 0, fmt.Errorf("destination %q: bad name", nameAndPort)
	}
	return name, port, nil
}

// Destination reads a destination's metadata: GET /sec/v1.0/destinations/{name:port}. The port is
// checked here, before anything is sent. Name is the one the service sent, else nameAndPort.
func (c *Client) Destination(ctx context.Context, nameAndPort string) (*DestinationInfo, error) {
	const op = "destination"
	if _, _, err := SplitDestination(nameAndPort); err != nil {
		return nil, &Error{Op: op, Reason: ReasonRejected, Message: err.Error(), err: err}
	}
	raw, err := c.do(ctx, op, http.MethodGet, c.endpoint(destPath)+url.PathEscape(nameAndPort), "", nil, c.timeout, maxSmallReply)
	if err != nil {
		return nil, err
	}
	d, derr := DecodeDestination(raw)
	if derr != nil {
		return nil, c.badResponse(op, "body is not destination metadata: %v", derr)
	}
	if d.Name == "" {
		d.Name = nameAndPort
	}
	return d, nil
}

// Behavior reads a flow's behaviour metadata: GET /sec/v1.0/behaviors/{flowId}. The document is
// returned as sent (at most MaxDocument bytes; nil for null).
func (c *Client) Behavior(ctx context.Context, flowID string) (json.RawMessage, error) {
	return c.metadata(ctx, "behavior", "flow id", behPath, flowID)
}

// Event reads an event's metadata: GET /sec/v1.0/events/{eventId}, as Behavior.
func (c *Client) Event(ctx context.Context, eventID string) (json.RawMessage, error) {
	return c.metadata(ctx, "event", "event id", eventPath, eventID)
}

func (c *Client) metadata(ctx context.Context, op, what, prefix, id string) (json.RawMessage, error) {
	if err := checkID(op, what, id); err != nil {
		return nil, err
	}
	raw, err := c.do(ctx, op, http.MethodGet, c.endpoint(prefix)+url.PathEscape(id), "", nil, c.timeout, maxSmallReply)
	if err != nil {
		return nil, err
	}
	doc, derr := DecodeDocument(raw)
	if derr != nil {
		return nil, c.badResponse(op, "%v", derr)
	}
	return doc, nil
}
