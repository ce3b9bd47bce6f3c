package ui

import (
	"cmp"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

var funcs = template.FuncMap{
	"ts": func(t *timestamppb.Timestamp) string {
		if t == nil || !t.IsValid() || t.AsTime().IsZero() {
			return "—"
		}
		return t.AsTime().UTC().Format("2006-01-02 15:04:05Z")
	},
	"unix": func(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04Z") },
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"state": func(st flowfleetv1.SampleState) string {
		return strings.ToLower(strings.TrimPrefix(st.String(), "SAMPLE_STATE_"))
	},
	"source": func(ns flowfleetv1.NameSource) string {
		return strings.ToLower(strings.TrimPrefix(ns.String(), "NAME_SOURCE_"))
	},
	"proto": func(p flowfleetv1.Protocol) string { return strings.TrimPrefix(p.String(), "PROTOCOL_") },
}

// explain turns a collector error into an HTTP status and a sentence for the page.
func explain(err error) (int, string) {
	if errors.Is(err, errNotAllowed) {
		return http.StatusForbidden, "This action needs a POST from this console's own form."
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.PermissionDenied:
		return http.StatusForbidden, "The collector refused: your certificate's role does not allow this (re-relay and enrich need an admin certificate). " + st.Message()
	case codes.NotFound:
		return http.StatusNotFound, "Not found: " + st.Message()
	case codes.InvalidArgument:
		return http.StatusBadRequest, "Invalid request: " + st.Message()
	case codes.Unavailable, codes.DeadlineExceeded:
		return http.StatusBadGateway, "The collector is not reachable: " + st.Message()
	}
	return http.StatusBadGateway, "Collector error: " + st.Message()
}

// hostRow is one fleet page row.
type hostRow struct {
	Host  *flowfleetv1.Host
	Chart chart
}

// chart is what static/app.js draws with uPlot: x values (unix seconds or indexes) and one series.
type chart struct {
	X      []float64 `json:"x"`
	Y      []float64 `json:"y"`
	Labels []string  `json:"labels,omitempty"`
	Name   string    `json:"name"`
}

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	var rows []hostRow
	req := &flowfleetv1.ListHostsRequest{}
	for len(rows) < maxHosts {
		resp, err := s.fleet.ListHosts(ctx, req)
		if err != nil {
			s.fail(w, "Hosts", err)
			return
		}
		for _, h := range resp.GetHosts() {
			if len(rows) < maxHosts {
				rows = append(rows, hostRow{Host: h})
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	since := timestamppb.New(time.Now().Add(-24 * time.Hour))
	for i := range rows[:min(len(rows), maxChartHosts)] {
		resp, err := s.samples.ListSamples(ctx, &flowfleetv1.ListSamplesRequest{Host: rows[i].Host.GetName(), Since: since, PageSize: maxChartSamples})
		if err != nil {
			s.fail(w, "Samples", err)
			return
		}
		c := chart{Name: "flows"}
		ss := resp.GetSamples()
		slices.SortFunc(ss, func(a, b *flowfleetv1.Sample) int { return cmp.Compare(a.GetWindowStart(), b.GetWindowStart()) })
		for _, smp := range ss {
			c.X = append(c.X, float64(smp.GetWindowStart()))
			c.Y = append(c.Y, float64(smp.GetFlowCount()))
		}
		rows[i].Chart = c
	}
	s.render(w, http.StatusOK, "fleet", map[string]any{"Title": "Fleet", "Hosts": rows, "Truncated": len(rows) == maxHosts})
}

func (s *Server) hostPage(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	ctx, cancel := s.ctx(r)
	defer cancel()
	req := &flowfleetv1.ListSamplesRequest{Host: host, PageSize: maxChartSamples, PageToken: r.URL.Query().Get("page")}
	if d, err := time.ParseDuration(r.URL.Query().Get("since")); err == nil && d > 0 {
		req.Since = timestamppb.New(time.Now().Add(-d))
	}
	resp, err := s.samples.ListSamples(ctx, req)
	if err != nil {
		s.fail(w, "Host "+host, err)
		return
	}
	ss := resp.GetSamples()
	slices.SortFunc(ss, func(a, b *flowfleetv1.Sample) int { return cmp.Compare(a.GetWindowStart(), b.GetWindowStart()) })
	flows, bytes := chart{Name: "flows"}, chart{Name: "bytes"}
	for _, smp := range ss {
		flows.X = append(flows.X, float64(smp.GetWindowStart()))
		flows.Y = append(flows.Y, float64(smp.GetFlowCount()))
		bytes.X = append(bytes.X, float64(smp.GetWindowStart()))
		bytes.Y = append(bytes.Y, float64(smp.GetBytes()))
	}
	slices.Reverse(ss) // newest first in the table
	s.render(w, http.StatusOK, "host", map[string]any{"Title": "Host " + host, "Host": host, "Samples": ss, "Flows": flows, "Bytes": bytes,
		"Next": resp.GetNextPageToken()})
}

// tableQuery is the sample table's sort, filter and page, from the URL.
type tableQuery struct {
	Sort, Filter, Page string
	Desc               bool
	Offset             int
}

func (s *Server) samplePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	tq := tableQuery{Sort: q.Get("sort"), Filter: strings.TrimSpace(q.Get("q")), Page: q.Get("page"), Desc: q.Get("desc") == "1"}
	if len(tq.Filter) > 200 {
		tq.Filter = tq.Filter[:200]
	}
	tq.Offset, _ = strconv.Atoi(q.Get("offset"))
	tq.Offset = max(tq.Offset, 0)
	ctx, cancel := s.ctx(r)
	defer cancel()
	got, err := s.samples.GetSample(ctx, &flowfleetv1.GetSampleRequest{Id: id})
	if err != nil {
		s.fail(w, "Sample "+id, err)
		return
	}
	smp := got.GetSample()
	data := map[string]any{"Title": "Sample " + id, "Sample": smp, "Q": tq, "CSRF": s.csrfToken(r), "CanLabel": s.opt.Label != nil}
	var page []*flowfleetv1.Flow
	if tq.Sort == "" && tq.Filter == "" {
		// The first page of a large sample must be quick: one ListSampleFlows page, no whole fetch.
		resp, err := s.samples.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: id, PageSize: pageSize, PageToken: tq.Page})
		if err != nil {
			s.fail(w, "Flows of "+id, err)
			return
		}
		page = resp.GetFlows()
		data["NextPage"] = resp.GetNextPageToken()
	} else {
		all, capped, err := s.wholeSample(r, smp)
		if err != nil {
			s.fail(w, "Flows of "+id, err)
			return
		}
		rows := filterSort(all, tq)
		data["Matching"], data["Capped"] = len(rows), capped
		if tq.Offset < len(rows) {
			page = rows[tq.Offset:min(len(rows), tq.Offset+pageSize)]
		}
		if tq.Offset+pageSize < len(rows) {
			data["NextOffset"] = tq.Offset + pageSize
		}
		if tq.Offset > 0 {
			data["PrevOffset"] = max(0, tq.Offset-pageSize)
		}
	}
	data["Flows"] = page
	data["Top"] = s.topDestinations(r, smp)
	s.render(w, http.StatusOK, "sample", data)
}

// topDestinations counts the sample's flows by destination name (or address) for the bar chart, from
// the cached whole sample when there is one, else from its first page of up to 10,000 flows.
func (s *Server) topDestinations(r *http.Request, smp *flowfleetv1.Sample) chart {
	flows, ok := s.cache.get(cacheKey(smp))
	if !ok {
		ctx, cancel := s.ctx(r)
		defer cancel()
		resp, err := s.samples.ListSampleFlows(ctx, &flowfleetv1.ListSampleFlowsRequest{Id: smp.GetId(), PageSize: 10000})
		if err != nil {
			return chart{}
		}
		flows = resp.GetFlows()
	}
	counts := map[string]int{}
	for _, f := range flows {
		counts[destName(f)]++
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b)) })
	c := chart{Name: "flows"}
	for i, n := range names[:min(len(names), maxTopDest)] {
		c.X, c.Y, c.Labels = append(c.X, float64(i)), append(c.Y, float64(counts[n])), append(c.Labels, n)
	}
	return c
}

func destName(f *flowfleetv1.Flow) string { return cmp.Or(f.GetDstName(), f.GetDstAddr()) }

// cacheKey names a sample's content: a new revision is a different entry.
func cacheKey(smp *flowfleetv1.Sample) string {
	return smp.GetId() + "@" + strconv.Itoa(int(smp.GetRevision()))
}

// wholeSample returns up to maxSortFlows of the sample's flows, from the cache or the collector.
func (s *Server) wholeSample(r *http.Request, smp *flowfleetv1.Sample) ([]*flowfleetv1.Flow, bool, error) {
	key := cacheKey(smp)
	if all, ok := s.cache.get(key); ok {
		return all, int64(len(all)) < smp.GetFlowCount(), nil
	}
	var all []*flowfleetv1.Flow
	req := &flowfleetv1.ListSampleFlowsRequest{Id: smp.GetId(), PageSize: 10000}
	for len(all) < maxSortFlows {
		ctx, cancel := s.ctx(r)
		resp, err := s.samples.ListSampleFlows(ctx, req)
		cancel()
		if err != nil {
			return nil, false, err
		}
		all = append(all, resp.GetFlows()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	capped := len(all) > maxSortFlows || req.PageToken != ""
	all = all[:min(len(all), maxSortFlows)]
	s.cache.put(key, all)
	return all, capped, nil
}

// filterSort keeps the flows whose addresses, name or category contain the filter and sorts them.
func filterSort(all []*flowfleetv1.Flow, tq tableQuery) []*flowfleetv1.Flow {
	rows := all
	if tq.Filter != "" {
		f := strings.ToLower(tq.Filter)
		rows = nil
		for _, fl := range all {
			if strings.Contains(strings.ToLower(fl.GetDstName()), f) || strings.Contains(fl.GetSrcAddr(), f) ||
				strings.Contains(fl.GetDstAddr(), f) || strings.Contains(strings.ToLower(fl.GetCategory()), f) {
				rows = append(rows, fl)
			}
		}
	}
	key := map[string]func(a, b *flowfleetv1.Flow) int{
		"name": func(a, b *flowfleetv1.Flow) int { return cmp.Compare(a.GetDstName(), b.GetDstName()) },
		"src":  func(a, b *flowfleetv1.Flow) int { return cmp.Compare(a.GetSrcAddr(), b.GetSrcAddr()) },
		"dst":  func(a, b *flowfleetv1.Flow) int { return cmp.Compare(a.GetDstAddr(), b.GetDstAddr()) },
		"bytes": func(a, b *flowfleetv1.Flow) int {
			return cmp.Compare(a.GetSrcBytes()+a.GetDstBytes(), b.GetSrcBytes()+b.GetDstBytes())
		},
		"first":    func(a, b *flowfleetv1.Flow) int { return cmp.Compare(a.GetFirstSeen(), b.GetFirstSeen()) },
		"category": func(a, b *flowfleetv1.Flow) int { return cmp.Compare(a.GetCategory(), b.GetCategory()) },
	}[tq.Sort]
	if key != nil {
		rows = slices.Clone(rows)
		slices.SortStableFunc(rows, func(a, b *flowfleetv1.Flow) int {
			if tq.Desc {
				return key(b, a)
			}
			return key(a, b)
		})
	}
	return rows
}

// content downloads the sample's .bf, labelled with ?labeled=1.
func (s *Server) content(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := s.ctx(r)
	defer cancel()
	stream, err := s.samples.GetSampleContent(ctx, &flowfleetv1.GetSampleContentRequest{Id: id})
	if err != nil {
		s.fail(w, "Download "+id, err)
		return
	}
	var content []byte
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fail(w, "Download "+id, err)
			return
		}
		content = append(content, resp.GetChunk()...)
	}
	name := id + ".bf"
	if r.URL.Query().Get("labeled") == "1" && s.opt.Label != nil {
		if content, err = s.opt.Label(ctx, id, content); err != nil {
			s.fail(w, "Label "+id, err)
			return
		}
		name = id + ".labeled.bf"
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	_, _ = w.Write(content)
}

func (s *Server) relay(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, "Re-relay", func(id string) (string, error) {
		ctx, cancel := s.ctx(r)
		defer cancel()
		_, err := s.samples.RelaySample(ctx, &flowfleetv1.RelaySampleRequest{Id: id})
		return "queued for relay", err
	})
}

func (s *Server) enrich(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, "Enrich", func(id string) (string, error) {
		ctx, cancel := s.ctx(r)
		defer cancel()
		resp, err := s.samples.EnrichSample(ctx, &flowfleetv1.EnrichSampleRequest{Id: id})
		return fmt.Sprintf("%d queued for enrichment", resp.GetQueued()), err
	})
}

// action runs an admin action after the CSRF check and shows its outcome.
func (s *Server) action(w http.ResponseWriter, r *http.Request, what string, do func(id string) (string, error)) {
	id := r.PathValue("id")
	if !s.checkCSRF(r) {
		s.fail(w, what+" "+id, errNotAllowed)
		return
	}
	msg, err := do(id)
	if err != nil {
		s.fail(w, what+" "+id, err)
		return
	}
	s.render(w, http.StatusOK, "error", map[string]any{"Title": what + " " + id, "Message": "Sample " + id + ": " + msg + ".", "Back": "/samples/" + id})
}

// events streams WatchSamples to the page as Server-Sent Events: "sample" with the sample's host, id,
// window and flow count, and "lost" with the number of events the collector dropped.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	stream, err := s.samples.WatchSamples(r.Context(), &flowfleetv1.WatchSamplesRequest{Host: r.URL.Query().Get("host")})
	if err != nil {
		s.fail(w, "Watch", err)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": watching\n\n")
	fl.Flush()
	for {
		resp, err := stream.Recv()
		if err != nil {
			if r.Context().Err() == nil {
				b, _ := json.Marshal(map[string]string{"error": status.Convert(err).Message()})
				fmt.Fprintf(w, "event: failed\ndata: %s\n\n", b)
				fl.Flush()
			}
			return
		}
		var ev string
		var b []byte
		if lost := resp.GetEventsLost(); lost != nil {
			ev, b = "lost", must(json.Marshal(map[string]uint64{"count": lost.GetCount()}))
		} else if e := resp.GetEvent(); e != nil {
			smp := e.GetSample()
			ev, b = "sample", must(json.Marshal(map[string]any{"host": smp.GetHost(), "id": smp.GetId(), "window": smp.GetWindowStart(),
				"flows": smp.GetFlowCount(), "state": funcs["state"].(func(flowfleetv1.SampleState) string)(smp.GetState())}))
		} else {
			continue
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev, b)
		fl.Flush()
	}
}

func must(b []byte, _ error) []byte { return b }

// lru is a small least-recently-used cache of whole samples' flows.
type lru struct {
	mu    sync.Mutex
	size  int
	order *list.List // of *entry, most recent first
	byKey map[string]*list.Element
}

type entry struct {
	key   string
	flows []*flowfleetv1.Flow
}

func newLRU(size int) *lru {
	return &lru{size: size, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *lru) get(key string) ([]*flowfleetv1.Flow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*entry).flows, true
	}
	return nil, false
}

func (c *lru) put(key string, flows []*flowfleetv1.Flow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		e.Value.(*entry).flows = flows
		c.order.MoveToFront(e)
		return
	}
	c.byKey[key] = c.order.PushFront(&entry{key: key, flows: flows})
	if c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*entry).key)
	}
}
