package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// Enrichment (docs/enrichment.md): a sample NetworkSage has processed goes through two more outbox
// phases, with the relay's concurrency bound, backoff, Retry-After handling and key:
//
//   - enrich: read the sample's enriched flows (GET …/list) and aggregated view (GET …/aggregated),
//     match the flows to the sample's (matchFlows), store each flow's category, flow id and event id
//     and each destination's metadata, and ask for the summary and categorization (POST). 3 requests + 2
//     POSTs; failures that may pass are retried with backoff up to Config.MaxAttempts.
//   - report: GET the summary and categorization every Config.PollInterval until each says generated
//     or failed (a failed seen within Config.ReportGrace of the request is not final: generation may
//     not have begun), then store the verdict, confidence and summary: the sample is enriched. 2
//     requests a round.
//
// An enrichment failure never touches the sample's flows or file: the sample ends enrichment_failed
// with the failed call and how it failed, and `flowctl samples enrich` tries again.

// enrichOps are the enrichment's steps, the values of the enrichment failure metric's step label.
var enrichOps = []string{"content", "flows", "aggregated", "request_report", "report", "deadline"}

// enrichStep is a failed enrichment step: which, and the error.
type enrichStep struct {
	op  string // one of enrichOps
	err error
	// final: retrying cannot help (content that does not decode, a deadline passed).
	final bool
}

func (w *Worker) enrich(ctx context.Context, e store.OutboxEntry) {
	log := w.log.With("sample", e.SampleID, "remote_id", e.RemoteID)
	w.metrics.enrichAttempts.Inc()
	c, step := w.fetchEnrichment(ctx, e)
	if step != nil {
		w.enrichFailed(ctx, e, log, *step, store.StateProcessed)
		return
	}
	now := time.Now()
	c.SampleID, c.State, c.RemoteID = e.SampleID, store.StateProcessed, e.RemoteID
	c.NextPhase, c.PollAt, c.PollUntil = store.PhaseReport, now.Add(max(w.cfg.PollInterval, 0)), now.Add(w.cfg.ReportDeadline)
	if _, err := w.complete(ctx, c, store.StateProcessed); err != nil {
		log.Error("recording the enriched flows (the entry is retried when its claim runs out)", "err", err)
		return
	}
	log.Info("NetworkSage's flows stored; waiting for its summary and categorization",
		"matched", c.Enrichment.FlowsMatched, "unmatched", c.Enrichment.FlowsUnmatched,
		"remote_unmatched", c.Enrichment.RemoteUnmatched, "destinations", len(c.Destinations))
	w.Notify()
}

// fetchEnrichment makes the enrich phase's requests and builds what it records.
func (w *Worker) fetchEnrichment(ctx context.Context, e store.OutboxEntry) (store.OutboxCompletion, *enrichStep) {
	var c store.OutboxCompletion
	content, err := w.store.SampleContent(ctx, e.SampleID)
	if err != nil {
		return c, &enrichStep{op: "content", err: fmt.Errorf("reading the sample's stored content: %w", err),
			final: errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound)}
	}
	file, err := bayseflow.Decode(content)
	if err != nil {
		return c, &enrichStep{op: "content", err: fmt.Errorf("decoding the sample's stored content: %w", err), final: true}
	}
	remote, err := w.client.SampleFlows(ctx, e.RemoteID)
	if err != nil {
		return c, &enrichStep{op: "flows", err: err}
	}
	agg, err := w.client.Aggregated(ctx, e.RemoteID)
	if err != nil {
		return c, &enrichStep{op: "aggregated", err: err}
	}
	for _, kind := range []ReportKind{ReportSummary, ReportCategorization} {
		if err := w.client.RequestReport(ctx, e.RemoteID, kind); err != nil {
			return c, &enrichStep{op: "request_report", err: err}
		}
	}
	m := matchFlows(file.Flows, remote)
	c.Labels = m.labels
	c.Enrichment = &store.Enrichment{FlowsMatched: m.matched, FlowsUnmatched: len(file.Flows) - m.matched,
		RemoteUnmatched: m.remoteUnmatched}
	now := time.Now()
	seen := map[string]bool{}
	for _, a := range agg {
		d := a.Destination
		if d == nil {
			continue
		}
		name := d.Name
		if name == "" {
			name = string(a.Secflow.DestinationData)
		}
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		c.Destinations = append(c.Destinations, store.Destination{Name: name, Title: d.Title,
			Description: d.Description, Relevance: d.Relevance, Tags: d.Tags, Fetched: now,
			Expires: now.Add(w.cfg.DestinationTTL)})
	}
	return c, nil
}

// report asks for the summary and categorization; when both are final it records the verdict.
func (w *Worker) report(ctx context.Context, e store.OutboxEntry) {
	log := w.log.With("sample", e.SampleID, "remote_id", e.RemoteID)
	now := time.Now()
	var notes []string
	var got []*Report
	final := true
	for _, kind := range []ReportKind{ReportSummary, ReportCategorization} {
		r, err := w.client.Report(ctx, e.RemoteID, kind)
		var ae *Error
		switch {
		case err != nil && errors.As(err, &ae) && ae.Permanent():
			notes = append(notes, err.Error())
			got = append(got, nil)
		case err != nil:
			w.enrichFailed(ctx, e, log, enrichStep{op: "report", err: err}, store.StateProcessed)
			return
		case r.Status == ReportGenerated:
			got = append(got, r)
		case r.Status == ReportFailed && !e.PhaseStarted.IsZero() && now.Sub(e.PhaseStarted) < w.cfg.ReportGrace:
			final = false // NetworkSage says failed until generation begins
		case r.Status == ReportFailed:
			notes = append(notes, fmt.Sprintf("networksage %s: status failed (NetworkSage could not generate it)", kind))
			got = append(got, nil)
		default:
			final = false
		}
	}
	if !final {
		if !now.Before(e.PollUntil) {
			w.enrichFailed(ctx, e, log, enrichStep{op: "deadline", final: true, err: fmt.Errorf(
				"networksage summary and categorization: not generated within %s of the request", w.cfg.ReportDeadline)},
				store.StateProcessed)
			return
		}
		w.retry(ctx, e, w.cfg.PollInterval, false, time.Time{}, "")
		return
	}
	x, err := w.store.GetSample(ctx, e.SampleID)
	if err != nil {
		log.Error("reading the sample (the entry is retried when its claim runs out)", "err", err)
		return
	}
	en := x.Enrichment
	en.Verdict, en.Confidence, en.Summary, en.Error = "", "", "", strings.Join(notes, "; ")
	for _, r := range got { // the summary first, else the categorization
		if r != nil && en.Verdict == "" && en.Summary == "" {
			en.Verdict, en.Confidence, en.Summary = r.Verdict, r.Confidence, r.Summary
		}
	}
	state := store.StateEnriched
	if got[0] == nil && got[1] == nil {
		state = store.StateEnrichmentFailed
		w.metrics.enrichFailures.WithLabelValues("report").Inc()
	}
	if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: state, RemoteID: e.RemoteID,
		Enrichment: &en}, store.StateProcessed); err != nil {
		log.Error("recording the enrichment (the entry is retried when its claim runs out)", "err", err)
		return
	}
	if state == store.StateEnrichmentFailed {
		log.Warn("NetworkSage generated neither a summary nor a categorization; the flows' categories are kept",
			"err", en.Error)
		return
	}
	w.metrics.enriched.Inc()
	if !x.Processed.IsZero() {
		w.metrics.enrichLatency.Observe(max(time.Since(x.Processed).Seconds(), 0))
	}
	log.Info("sample enriched", "verdict", en.Verdict, "confidence", en.Confidence, "note", en.Error)
}

// enrichFailed handles a failed enrichment step: a failure that may pass is retried with backoff (after
// Retry-After if the service sent one) up to Config.MaxAttempts; any other ends the sample
// enrichment_failed with the step and the error.
func (w *Worker) enrichFailed(ctx context.Context, e store.OutboxEntry, log *slog.Logger, step enrichStep, previous store.SampleState) {
	var ae *Error
	isAPI := errors.As(step.err, &ae)
	if isAPI && ae.Reason == ReasonCanceled || ctx.Err() != nil {
		w.retry(ctx, e, 0, false, time.Time{}, "") // shutting down: again at the next start
		return
	}
	attempts := e.Attempts + 1
	retryable := !step.final && !(isAPI && ae.Permanent())
	if retryable && attempts < w.cfg.MaxAttempts {
		wait := w.backoff(attempts)
		if isAPI && ae.RetryAfter > 0 {
			wait = min(ae.RetryAfter, w.cfg.MaxRetryAfter)
		}
		log.Warn("enrichment step failed; will retry", "step", step.op, "attempt", attempts,
			"retry_in", wait.Round(time.Millisecond), "err", step.err)
		w.retry(ctx, e, wait, true, time.Time{}, "")
		return
	}
	msg := step.err.Error()
	if retryable {
		msg = fmt.Sprintf("gave up after %d attempts; last: %s", attempts, msg)
	}
	w.metrics.enrichFailures.WithLabelValues(step.op).Inc()
	log.Error("enrichment failed; the sample's flows and file are kept (try again with: flowctl samples enrich ID)",
		"step", step.op, "err", msg)
	x, err := w.store.GetSample(ctx, e.SampleID)
	en := store.Enrichment{}
	if err == nil {
		en = x.Enrichment
	}
	en.Error = msg
	if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: store.StateEnrichmentFailed,
		RemoteID: e.RemoteID, Enrichment: &en}, previous); err != nil {
		log.Error("recording the failure", "err", err)
	}
}
