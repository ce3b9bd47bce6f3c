package sagefake

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The extra flow SetMismatchFlows adds to /list.
const (
	MismatchSource      = "192.0.2.1:9"
	MismatchDestination = "mismatch.example:9"
)

// report is a requested summary or categorization.
type report struct {
	requested time.Time
	fail      bool // generation ends "failed"
}

// SetFailReports switches whether report generation requested from now on ends "failed".
func (f *Fake) SetFailReports(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failReports = on
}

// SetMismatchFlows switches whether /list disagrees with the uploaded flows: the first flow's
// sourceBytes is one more than uploaded, and one extra flow (MismatchSource → MismatchDestination,
// protocol "TCP", counts "1") is appended, enriched by the rule like the others.
func (f *Fake) SetMismatchFlows(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mismatch = on
}

// text renders an uploaded flow's field as the service sends it: a string, numbers as written.
func text(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// secflow is an uploaded flow in the §4.4 shape, enriched by the rule.
func secflow(fl map[string]any) map[string]any {
	src, dst := text(fl, "src"), text(fl, "dst")
	id := FlowID(src, dst, text(fl, "protocolInformation"))
	cat := Category(dst)
	out := map[string]any{
		"sourceData": src, "destinationData": dst, "destinationNameSource": text(fl, "destinationNameSource"),
		"sourcePackets": text(fl, "srcPkts"), "sourceBytes": text(fl, "srcBytes"),
		"destinationPackets": text(fl, "dstPkts"), "destinationBytes": text(fl, "dstBytes"),
		"relativeStart": text(fl, "relativeStart"), "duration": text(fl, "duration"),
		"flowCategory": cat, "flowId": id,
	}
	if ev := EventID(cat, id); ev != "" {
		out["eventId"] = ev
	}
	return out
}

func enriched(u *Upload) []map[string]any {
	out := make([]map[string]any, 0, len(u.flows))
	for _, fl := range u.flows {
		out = append(out, secflow(fl))
	}
	return out
}

func mismatched(flows []map[string]any) []map[string]any {
	if len(flows) > 0 {
		n, _ := strconv.ParseInt(flows[0]["sourceBytes"].(string), 10, 64)
		flows[0]["sourceBytes"] = strconv.FormatInt(n+1, 10)
	}
	return append(flows, secflow(map[string]any{"src": MismatchSource, "dst": MismatchDestination,
		"destinationNameSource": "original", "srcPkts": "1", "srcBytes": "1", "dstPkts": "1", "dstBytes": "1",
		"relativeStart": "0", "duration": "0", "protocolInformation": "TCP"}))
}

// aggregatedView is one element per distinct flowId, in upload order.
func aggregatedView(u *Upload) []map[string]any {
	out := []map[string]any{}
	seen := map[string]bool{}
	for _, fl := range enriched(u) {
		id := fl["flowId"].(string)
		if seen[id] {
			continue
		}
		seen[id] = true
		var event any
		if ev, ok := fl["eventId"].(string); ok {
			event, _ = Event(ev)
		}
		out = append(out, map[string]any{"secflow": fl, "destination": Destination(fl["destinationData"].(string)),
			"behavior": Behavior(id), "event": event, "flowIdCount": Count(id)})
	}
	return out
}

func (f *Fake) aggregated(key, id string) reply {
	u, _ := f.lookup(key, id)
	if u == nil {
		return errorReply(http.StatusNotFound, "sample not found")
	}
	if done, _ := f.processed(u); !done {
		return reply{status: http.StatusOK, body: []map[string]any{}}
	}
	return reply{status: http.StatusOK, body: aggregatedView(u)}
}

// public serves the public aggregated view of a public id (base64 of "<account>#hash#<sampleId>").
func (f *Fake) public(publicID string) reply {
	notFound := errorReply(http.StatusNotFound, "sample not found")
	if f.o.Private {
		return notFound
	}
	b, err := base64.StdEncoding.DecodeString(publicID)
	if err != nil {
		return notFound
	}
	acct, sampleID, ok := strings.Cut(string(b), "#hash#")
	if !ok {
		return notFound
	}
	f.mu.Lock()
	u := f.byID[sampleID]
	owner := ""
	if u != nil {
		owner = f.accounts[u.Key]
	}
	f.mu.Unlock()
	if u == nil || owner != acct {
		return notFound
	}
	if done, _ := f.processed(u); !done {
		return reply{status: http.StatusOK, body: []map[string]any{}}
	}
	return reply{status: http.StatusOK, body: aggregatedView(u)}
}

func (f *Fake) destination(nameAndPort string) reply {
	name, port := splitDest(nameAndPort)
	if name == "" || port <= 0 {
		return f.badRequest("a destination is name:port; the port is mandatory")
	}
	return reply{status: http.StatusOK, body: Destination(nameAndPort)}
}

// report serves GET and POST of a sample's summary or categorization (see the package doc).
func (f *Fake) report(key, id string, route Route, post bool) reply {
	u, _ := f.lookup(key, id)
	if u == nil {
		return errorReply(http.StatusNotFound, "sample not found")
	}
	now := f.o.Now()
	_, processedAt := f.processed(u)
	readyAt := func(r *report) time.Time {
		from := r.requested
		if processedAt.After(from) {
			from = processedAt
		}
		return from.Add(f.o.ReportDelay)
	}
	f.mu.Lock()
	r := u.reports[route]
	if post && (r == nil || (r.fail && !now.Before(readyAt(r)))) {
		if u.reports == nil {
			u.reports = map[Route]*report{}
		}
		r = &report{requested: now, fail: f.failReports}
		u.reports[route] = r
	}
	f.mu.Unlock()
	switch {
	case r == nil:
		return reply{status: http.StatusOK, body: map[string]any{"status": "failed"}}
	case now.Before(readyAt(r)):
		return reply{status: http.StatusOK, body: map[string]any{"status": "pending"}}
	case r.fail:
		return reply{status: http.StatusOK, body: map[string]any{"status": "failed"}}
	}
	var cats []string
	for _, fl := range enriched(u) {
		cats = append(cats, fl["flowCategory"].(string))
	}
	verdict, confidence := Verdict(cats)
	doc, _ := json.Marshal(map[string]any{"verdict": verdict, "confidence": confidence,
		"summary": ReportText(string(route), cats), "details": ReportDetails(cats)})
	return reply{status: http.StatusOK, body: map[string]any{"status": "generated", string(route): string(doc)}}
}
