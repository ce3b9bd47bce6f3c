package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/backoff"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Config configures the relay: the client and the outbox worker. The zero value of every field but
// APIKey means its default; with no APIKey the relay is off.
type Config struct {
	// BaseURL is NetworkSage's API (default DefaultBaseURL).
	BaseURL string
	// APIKey is the NetworkSage API key; "" turns the relay off.
	APIKey Secret
	// Type is the upload's type field (default DefaultType, "secflow").
	Type string
	// Timeout bounds one request; an upload also gets its size at DefaultUploadRate (default 30 s).
	Timeout time.Duration
	// HTTPClient is the HTTP client (default: see ClientOptions).
	HTTPClient *http.Client

	// Concurrency bounds the uploads in flight: 1 to MaxConcurrency (default DefaultConcurrency).
	Concurrency int
	// ScanInterval is how often the outbox is looked at for due entries (default 1 s); Notify looks at
	// once.
	ScanInterval time.Duration
	// BackoffBase and BackoffMax bound the exponential backoff between retries: attempt n waits between
	// half and all of min(BackoffBase·2^(n-1), BackoffMax) (defaults 1 s and 5 min).
	BackoffBase, BackoffMax time.Duration
	// MaxRetryAfter caps the wait a Retry-After header asks for (default 1 h).
	MaxRetryAfter time.Duration
	// MaxAttempts is how many uploads are tried before a sample is marked relay_failed (default 20;
	// with the default backoff about 1 h 10 min of trying).
	MaxAttempts int
	// Lease is how long a claimed entry stays claimed without an outcome before another worker may
	// take it (default 15 min, and at least 3 × Timeout).
	Lease time.Duration
	// PollInterval is how often an uploaded sample's processing state is asked for (default 15 s,
	// NetworkSage's own clients' interval; negative turns polling off). Below 15 s only in tests.
	PollInterval time.Duration
	// PollDeadline is how long after the upload polling gives up (default 30 min); the sample stays
	// relayed.
	PollDeadline time.Duration
	// ReportDeadline is how long after asking for a processed sample's summary and categorization the
	// relay waits for them before the sample is marked enrichment_failed (default 30 min).
	ReportDeadline time.Duration
	// ReportGrace is how long after asking for a report a status "failed" is taken to mean "not begun
	// yet" (default 2 min, as SeclarityIO's own Siemplify client does).
	ReportGrace time.Duration
	// DestinationTTL is how long a destination's metadata is kept (default 24 h).
	DestinationTTL time.Duration
	// Owner names this worker's claims in the store; it must be stable across restarts so that a
	// restart can release its own claims at once (default: the host name).
	Owner string
}

// Enabled reports whether the relay is on (there is an API key).
func (c *Config) Enabled() bool { return c.APIKey != "" }

// The defaults of Config.PollInterval (NetworkSage's own clients' interval) and Config.ReportDeadline.
const (
	DefaultPollInterval   = 15 * time.Second
	DefaultReportDeadline = 30 * time.Minute
)

// The bounds of Config.Concurrency, the uploads in flight (--relay-concurrency).
const (
	DefaultConcurrency = 4
	MaxConcurrency     = 64
)

func (c *Config) setDefaults() {
	if c.Type == "" {
		c.Type = DefaultType
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = time.Hour
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 20
	}
	if c.Lease <= 0 {
		c.Lease = 15 * time.Minute
	}
	c.Lease = max(c.Lease, 3*c.Timeout)
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PollDeadline <= 0 {
		c.PollDeadline = 30 * time.Minute
	}
	if c.ReportDeadline <= 0 {
		c.ReportDeadline = DefaultReportDeadline
	}
	if c.ReportGrace <= 0 {
		c.ReportGrace = 2 * time.Minute
	}
	if c.DestinationTTL <= 0 {
		c.DestinationTTL = 24 * time.Hour
	}
	if c.Owner == "" {
		c.Owner, _ = os.Hostname()
		if c.Owner == "" {
			c.Owner = "collector"
		}
	}
}

// Validate checks the settings a user gives.
func (c *Config) Validate() error {
	if c.Type != "" && !slices.Contains(Types, c.Type) {
		return fmt.Errorf("networksage type %q: want one of %v", c.Type, Types)
	}
	if c.BaseURL != "" {
		if _, err := ParseBaseURL(c.BaseURL); err != nil {
			return err
		}
	}
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		return fmt.Errorf("relay concurrency %d: want 1 to %d", c.Concurrency, MaxConcurrency)
	}
	return nil
}

// Store is what the worker needs of the store.
type Store interface {
	store.Outbox
	GetSample(ctx context.Context, id string) (*store.Sample, error)
	SampleContent(ctx context.Context, id string) ([]byte, error)
}

var _ Store = store.Store(nil)

// Worker drains the relay outbox. Make one with NewWorker and call Run once.
type Worker struct {
	cfg      Config
	client   *Client
	store    Store
	log      *slog.Logger
	metrics  *Metrics
	wake     chan struct{}
	onChange func(s store.Sample, previous store.SampleState)
}

// NewWorker checks cfg (which must have an API key) and returns a worker that registers its metrics on
// reg (nil: not registered).
func NewWorker(st Store, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	if !cfg.Enabled() {
		return nil, errors.New("relay: no NetworkSage API key")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	cfg.setDefaults()
	client, err := NewClient(ClientOptions{BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, Timeout: cfg.Timeout,
		HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Worker{cfg: cfg, client: client, store: st, log: log.With("component", "relay"),
		metrics: NewMetrics(reg), wake: make(chan struct{}, 1)}, nil
}

// OnChange sets a function called after the worker changes a sample's state (for WatchSamples). Call
// it before Run.
func (w *Worker) OnChange(f func(s store.Sample, previous store.SampleState)) { w.onChange = f }

// Client returns the worker's NetworkSage client.
func (w *Worker) Client() *Client { return w.client }

// Notify makes the worker look at the outbox now (a sample was queued). It never blocks.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run works on the outbox until ctx is done, then cancels the uploads in flight (their outcome is
// recorded, as ambiguous when the request had been sent) and returns.
func (w *Worker) Run(ctx context.Context) error {
	if n, err := w.store.ReleaseOutbox(ctx, w.cfg.Owner); err != nil {
		w.log.Warn("could not release claims of a previous run", "err", err)
	} else if n > 0 {
		w.log.Info("resuming uploads interrupted by a restart", "entries", n)
	}
	done := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	inflight := 0
	tick := time.NewTicker(w.cfg.ScanInterval)
	defer tick.Stop()
	var lastStats time.Time
	claimLogs := logx.NewLimiter(time.Minute) // an outbox that cannot be read: one line a minute
	for {
		if free := w.cfg.Concurrency - inflight; free > 0 && ctx.Err() == nil {
			entries, err := w.store.ClaimOutbox(ctx, w.cfg.Owner, time.Now(), w.cfg.Lease, free)
			if err != nil && ctx.Err() == nil {
				if ok, held := claimLogs.Allow("claim", time.Now()); ok {
					w.log.Error("reading the outbox", "err", err, logx.SuppressedKey, held)
				}
			}
			for _, e := range entries {
				inflight++
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.process(ctx, e)
					done <- struct{}{}
				}()
			}
		}
		if time.Since(lastStats) >= w.cfg.ScanInterval {
			w.updateStats(ctx)
			lastStats = time.Now()
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			w.updateStats(context.WithoutCancel(ctx))
			return nil
		case <-done:
			inflight--
		case <-w.wake:
		case <-tick.C:
		}
	}
}

func (w *Worker) updateStats(ctx context.Context) {
	st, err := w.store.OutboxStats(ctx)
	if err != nil {
		return
	}
	w.metrics.queueLength.Set(float64(st.Queued))
	w.metrics.polling.Set(float64(st.Polling))
	w.metrics.enriching.Set(float64(st.Enriching))
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	w.metrics.oldestAge.Set(age)
}

// recordCtx is the context outcomes are written with: they are recorded even during shutdown.
func recordCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func (w *Worker) process(ctx context.Context, e store.OutboxEntry) {
	switch e.Phase {
	case store.PhasePoll:
		w.poll(ctx, e)
	case store.PhaseEnrich:
		w.enrich(ctx, e)
	case store.PhaseReport:
		w.report(ctx, e)
	default:
		w.upload(ctx, e)
	}
}

// backoff returns the wait before retry number attempts (1 for the first retry): equal jitter, between
// half and all of min(base·2^(attempts-1), max).
func (w *Worker) backoff(attempts int) time.Duration {
	return backoff.Policy{Base: w.cfg.BackoffBase, Max: w.cfg.BackoffMax, Equal: true}.Delay(attempts)
}

// retry releases an entry to be tried again after wait.
func (w *Worker) retry(ctx context.Context, e store.OutboxEntry, wait time.Duration, attempted bool, ambiguousSince time.Time, lastErr string) {
	rctx, cancel := recordCtx(ctx)
	defer cancel()
	if err := w.store.RetryOutbox(rctx, store.OutboxRetry{SampleID: e.SampleID, Owner: w.cfg.Owner,
		Due: time.Now().Add(wait), Attempted: attempted, AmbiguousSince: ambiguousSince, LastError: lastErr}); err != nil {
		w.log.Error("recording a retry (the entry is retried when its claim runs out)", "sample", e.SampleID, "err", err)
	}
}

// complete records the end of an entry's phase and publishes the sample's change.
func (w *Worker) complete(ctx context.Context, c store.OutboxCompletion, previous store.SampleState) (*store.Sample, error) {
	rctx, cancel := recordCtx(ctx)
	defer cancel()
	c.Owner = w.cfg.Owner
	s, err := w.store.CompleteOutbox(rctx, c)
	if err != nil {
		return nil, err
	}
	if w.onChange != nil && s.State != previous {
		w.onChange(*s, previous)
	}
	return s, nil
}

func (w *Worker) upload(ctx context.Context, e store.OutboxEntry) {
	log := w.log.With("sample", e.SampleID, "file", e.FileName)
	content, err := w.store.SampleContent(ctx, e.SampleID)
	if errors.Is(err, store.ErrCorrupt) {
		// Damaged bytes are never uploaded, and reading them again will not repair them.
		w.metrics.samplesFailed.WithLabelValues("corrupt").Inc()
		log.Error("sample content damaged in the store: not uploading, not retrying", "err", err)
		if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: store.StateRelayFailed,
			RelayError: "not uploaded: " + err.Error()}, store.StateWritten); err != nil {
			log.Error("recording the failure", "err", err)
		}
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Error("reading the sample from the store", "err", err)
		}
		w.retry(ctx, e, w.backoff(1), false, time.Time{}, "store: "+err.Error())
		return
	}
	if !e.AmbiguousSince.IsZero() {
		// An earlier attempt may have been accepted: look for it before sending another copy.
		up, err := w.client.FindUpload(ctx, e.FileName, e.AmbiguousSince)
		if err != nil {
			wait := w.backoff(max(e.Attempts, 1))
			var ae *Error
			if errors.As(err, &ae) && ae.RetryAfter > 0 {
				wait = min(ae.RetryAfter, w.cfg.MaxRetryAfter)
			}
			if errors.As(err, &ae) && ae.Reason == ReasonAuth {
				w.fail(ctx, e, log, ReasonAuth, err)
				return
			}
			if ctx.Err() == nil {
				log.Warn("could not check the uploads list after an uncertain upload; will check again",
					"err", err, "retry_in", wait.Round(time.Millisecond))
			}
			w.retry(ctx, e, wait, false, time.Time{}, err.Error())
			return
		}
		if up != nil {
			w.metrics.recovered.Inc()
			log.Info("an earlier upload whose reply was lost is in the uploads list; not uploading again",
				"remote_id", up.UUID)
			w.succeed(ctx, e, log, up.UUID, "found in the uploads list")
			return
		}
	}

	w.metrics.attempted.Inc()
	start := time.Now()
	res, err := w.client.Upload(ctx, e.FileName, content, w.cfg.Type)
	w.metrics.duration.Observe(time.Since(start).Seconds())
	if err == nil {
		w.metrics.succeeded.Inc()
		w.succeed(ctx, e, log, res.SampleID, "")
		return
	}
	var ae *Error
	if !errors.As(err, &ae) {
		ae = &Error{Op: "upload", Reason: ReasonNetwork, Message: w.cfg.APIKey.Redact(err.Error())}
	}
	w.metrics.failed.WithLabelValues(string(ae.Reason)).Inc()
	if ae.Permanent() {
		w.fail(ctx, e, log, ae.Reason, ae)
		return
	}
	var amb time.Time
	if ae.Ambiguous() {
		amb = start
	}
	attempts := e.Attempts + 1
	if ae.Reason == ReasonCanceled {
		// Shutting down: try again at the next start, without counting this attempt.
		w.retry(ctx, e, 0, false, amb, "")
		return
	}
	if attempts >= w.cfg.MaxAttempts {
		w.metrics.samplesFailed.WithLabelValues("gave_up").Inc()
		msg := fmt.Sprintf("gave up after %d attempts; last: %s", attempts, ae.Error())
		if !e.AmbiguousSince.IsZero() || !amb.IsZero() {
			msg += " (an attempt may have reached NetworkSage: check its uploads list before re-queueing)"
		}
		log.Error("giving up on the sample; it is kept (re-queue with: flowctl samples relay ID)",
			"attempts", attempts, "err", ae)
		if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: store.StateRelayFailed,
			RelayError: msg}, store.StateWritten); err != nil {
			log.Error("recording the failure", "err", err)
		}
		return
	}
	wait := w.backoff(attempts)
	if ae.RetryAfter > 0 && (ae.Reason == ReasonRateLimited || ae.Reason == ReasonUnavailable) {
		wait = min(ae.RetryAfter, w.cfg.MaxRetryAfter)
	}
	log.Warn("upload failed; will retry", "attempt", attempts, "reason", string(ae.Reason),
		"status", ae.Status, "uncertain", ae.Ambiguous(), "retry_in", wait.Round(time.Millisecond), "err", ae)
	w.retry(ctx, e, wait, true, amb, ae.Error())
}

// succeed records an acknowledged upload.
func (w *Worker) succeed(ctx context.Context, e store.OutboxEntry, log *slog.Logger, remoteID, note string) {
	c := store.OutboxCompletion{SampleID: e.SampleID, State: store.StateRelayed, RemoteID: remoteID}
	if remoteID == "" {
		c.RelayError = "uploaded (" + note + ") but NetworkSage gave no sample id"
	}
	if w.cfg.PollInterval > 0 && remoteID != "" {
		now := time.Now()
		c.PollAt, c.PollUntil = now.Add(w.cfg.PollInterval), now.Add(w.cfg.PollDeadline)
	}
	s, err := w.complete(ctx, c, store.StateWritten)
	if err != nil {
		// The upload is done but not recorded: the claim runs out, and the next attempt finds the upload
		// in the list (the entry is then ambiguous), so no second copy is sent.
		log.Error("the sample was uploaded but recording it failed", "remote_id", remoteID, "err", err)
		return
	}
	log.Info("sample uploaded", "remote_id", s.RemoteID, "attempts", e.Attempts+1)
}

// fail marks a sample relay_failed after a permanent error; the sample and its file are kept.
func (w *Worker) fail(ctx context.Context, e store.OutboxEntry, log *slog.Logger, reason Reason, err error) {
	w.metrics.samplesFailed.WithLabelValues(string(reason)).Inc()
	msg := err.Error()
	hint := ""
	switch reason {
	case ReasonAuth:
		hint = "NetworkSage refused the API key: check --networksage-api-key-file or FLOWFLEET_NETWORKSAGE_API_KEY, then re-queue with: flowctl samples relay ID"
	case ReasonTooLarge:
		hint = "the sample is larger than NetworkSage accepts; it is kept"
	default:
		hint = "NetworkSage refused the upload; the sample is kept (re-queue with: flowctl samples relay ID)"
	}
	log.Error("upload refused; not retrying", "reason", string(reason), "err", msg, "hint", hint)
	if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: store.StateRelayFailed,
		RelayError: msg}, store.StateWritten); err != nil {
		log.Error("recording the failure", "err", err)
	}
}

// poll asks NetworkSage whether an uploaded sample is processed.
func (w *Worker) poll(ctx context.Context, e store.OutboxEntry) {
	log := w.log.With("sample", e.SampleID, "remote_id", e.RemoteID)
	info, err := w.client.Sample(ctx, e.RemoteID)
	now := time.Now()
	switch {
	case err == nil && info.Processed:
		w.metrics.processed.Inc()
		// On to enrichment (enrich.go), due now.
		if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: store.StateProcessed,
			RemoteID: e.RemoteID, NextPhase: store.PhaseEnrich, PollAt: now, PollUntil: now.Add(w.cfg.ReportDeadline),
			Processed: now}, store.StateRelayed); err != nil {
			log.Error("recording the processed state", "err", err)
			return
		}
		log.Info("NetworkSage processed the sample; fetching its answers")
		w.Notify()
		return
	case err != nil && ctx.Err() != nil:
		w.retry(ctx, e, 0, false, time.Time{}, "")
		return
	}
	var ae *Error
	permanent := errors.As(err, &ae) && ae.Permanent()
	if permanent || !now.Before(e.PollUntil) {
		if permanent {
			log.Warn("stopped watching the sample's processing", "err", err)
		} else {
			log.Warn("NetworkSage had not processed the sample by the deadline; no longer watching it",
				"deadline", w.cfg.PollDeadline)
		}
		if _, err := w.complete(ctx, store.OutboxCompletion{SampleID: e.SampleID, State: store.StateRelayed,
			RemoteID: e.RemoteID}, store.StateRelayed); err != nil {
			log.Error("recording the end of polling", "err", err)
		}
		return
	}
	wait := w.cfg.PollInterval
	if ae != nil && ae.RetryAfter > wait {
		wait = min(ae.RetryAfter, w.cfg.MaxRetryAfter)
	}
	if err != nil {
		log.Debug("polling the sample failed; will poll again", "err", err)
	}
	w.retry(ctx, e, wait, false, time.Time{}, "")
}

// PollUntil is when polling a sample queued at now gives up (Config.PollDeadline).
func (w *Worker) PollUntil(now time.Time) time.Time { return now.Add(w.cfg.PollDeadline) }
