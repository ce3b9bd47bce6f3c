// Package sink owns the collector's live stream into a message bus: every sample the collector records
// is published, as JSON lines of the dataset schema (internal/dataset), to a Redis stream or a NATS
// JetStream subject, at least once (docs/sink.md).
//
// # Delivery
//
// The store's sink queue (store.SinkQueue, migration 00011) is the outbox: CloseWindow queues a sample in
// the transaction that records it, so a sample is either recorded and queued or neither. The Worker
// claims queued samples with a lease, reads their flows from the store one chunk at a time, cuts them
// into messages of at most MaxMessageFlows flows and MaxMessageBytes bytes, and hands at most
// Config.MaxInFlight messages at a time to a Publisher, which returns only when the bus acknowledged
// every one of them (Redis: the XADD reply; JetStream: the PubAck). A sample leaves the queue
// (CompleteSink) only after all its messages were acknowledged; any failure puts it back with backoff,
// and it is published again from its first message. Consumers see every message at least once: each
// carries a stable id (<sample id>/<revision>/<batch>) to deduplicate on; JetStream does so itself
// within its duplicate window (Nats-Msg-Id).
//
// # Order
//
// One Worker publishes one sample at a time, in the order samples were queued, and stops at the first
// failure, so one collector's samples reach the bus in commit order and each sample's messages in flow
// order. Several collectors sharing a PostgreSQL store publish their claims side by side.
package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/backoff"
	"github.com/flowfleet/flowfleet/internal/dataset"
	"github.com/flowfleet/flowfleet/internal/flowpb"
	"github.com/flowfleet/flowfleet/internal/logx"
	"github.com/flowfleet/flowfleet/internal/store"
)

// Message bounds: a message holds at most MaxMessageFlows flows and MaxMessageBytes bytes of JSON lines
// (a flow's line is a few hundred bytes: names are at most 253 bytes, so 1,000 flows stay under 1 MiB
// unless names are long; a message is cut earlier when they are).
const (
	MaxMessageFlows = store.FlowChunkFlows
	MaxMessageBytes = 1 << 20
)

// Defaults and bounds of Config.
const (
	DefaultStream      = "flowfleet-flows"
	DefaultSubject     = "flowfleet.flows"
	DefaultMaxInFlight = 64
	MaxMaxInFlight     = 1024
	DefaultLease       = 5 * time.Minute
	DefaultAckTimeout  = 10 * time.Second
	DefaultScan        = 5 * time.Second
	maxNameLen         = 256
)

// Config configures the sink; with no URL it is off.
type Config struct {
	// URL is the bus: redis://host:port[/db] or rediss:// (TLS) for Redis Streams; nats://host:port or
	// tls:// (TLS) for NATS JetStream. The TLS schemes need CertFile, KeyFile and CAFile (mutual TLS);
	// the plain schemes send flows in clear and are for a bus on the same host or a trusted network.
	URL string
	// Stream is the Redis stream key, or the JetStream stream's name (created for Subject when it does
	// not exist). Default DefaultStream.
	Stream string
	// Subject is the NATS subject messages are published on (NATS only). Default DefaultSubject.
	Subject string
	// CertFile, KeyFile and CAFile are the client certificate, its key and the CA bundle the bus's
	// server certificate must chain to.
	CertFile, KeyFile, CAFile string
	// Owner names this collector's claims on the queue (the collector's name).
	Owner string
	// MaxInFlight bounds the messages sent and not yet acknowledged (default 64, at most 1024).
	MaxInFlight int
	// AckTimeout bounds the wait for the bus to acknowledge a group of messages (default 10 s).
	AckTimeout time.Duration
	// Lease is how long a claim on a sample lasts (default 5 min): past it, another collector may
	// publish the sample again.
	Lease time.Duration
	// Retry is the backoff after a failure (default 1 s doubling to 1 min, ±20 %).
	Retry backoff.Policy
	// ScanInterval is how often the queue is looked at without a notification (default 5 s): samples
	// another collector queued, and the metrics.
	ScanInterval time.Duration
}

// Enabled says whether a bus is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// kind is the bus a URL names: "redis" or "nats"; tls says whether the scheme is a TLS one.
func (c Config) kind() (kind string, tls bool, err error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "", false, fmt.Errorf("sink: url: %w", err)
	}
	switch u.Scheme {
	case "redis":
		return "redis", false, nil
	case "rediss":
		return "redis", true, nil
	case "nats":
		return "nats", false, nil
	case "tls":
		return "nats", true, nil
	}
	return "", false, fmt.Errorf("sink: url %q: scheme must be redis, rediss, nats or tls", Redact(c.URL))
}

// SetDefaults fills in the defaults.
func (c *Config) SetDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.Retry.Base <= 0 {
		c.Retry = backoff.Policy{Base: time.Second, Max: time.Minute, Spread: 0.2}
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = DefaultScan
	}
}

// Validate checks an enabled configuration whose defaults are set.
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	_, tls, err := c.kind()
	if err != nil {
		return err
	}
	if tls && (c.CertFile == "" || c.KeyFile == "" || c.CAFile == "") {
		return errors.New("sink: a TLS bus (rediss://, tls://) needs --sink-cert, --sink-key and --sink-ca")
	}
	if !tls && (c.CertFile != "" || c.KeyFile != "") {
		return fmt.Errorf("sink: --sink-cert/--sink-key given for a plain url %q: use rediss:// or tls://", Redact(c.URL))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > MaxMaxInFlight {
		return fmt.Errorf("sink: max in flight %d must be 1–%d", c.MaxInFlight, MaxMaxInFlight)
	}
	if len(c.Stream) > maxNameLen || len(c.Subject) > maxNameLen {
		return fmt.Errorf("sink: stream and subject names are at most %d bytes", maxNameLen)
	}
	return nil
}

// Redact drops a URL's password (a Redis URL may carry one).
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// Message is one batch of a sample's flows, as the bus receives it.
type Message struct {
	// ID is <sample id>/<revision>/<batch>: stable across attempts, so consumers can deduplicate.
	ID       string
	SampleID string
	Host     string
	// WindowStart is the sample's window start, Unix seconds.
	WindowStart int64
	Revision    int
	// Batch numbers the sample's messages from 0, in flow order.
	Batch int
	// Flows is the number of flows in Data; SampleFlows the sample's flow count (a consumer has the
	// whole sample when the Flows of its batches add up to it).
	Flows       int
	SampleFlows int
	// Data holds Flows JSON lines of the dataset schema (docs/dataset.md).
	Data []byte
}

// Publisher sends messages to a bus.
type Publisher interface {
	// Publish sends msgs in order and returns nil only once the bus acknowledged every one of them.
	Publish(ctx context.Context, msgs []Message) error
	// Close releases the connection.
	Close() error
}

// Store is what the Worker needs of the store.
type Store interface {
	store.SinkQueue
	GetSample(ctx context.Context, id string) (*store.Sample, error)
	SampleFlows(ctx context.Context, id string) ([]byte, error)
	SampleFlowChunks(ctx context.Context, id string, from, to int) ([][]byte, error)
}

var _ Store = store.Store(nil)

// Worker publishes queued samples. Run it once; Notify may be called from any goroutine.
type Worker struct {
	st      Store
	pub     Publisher
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	wake    chan struct{}
}

// NewWorker returns a worker publishing through pub; cfg's defaults are set and it is checked.
func NewWorker(st Store, pub Publisher, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Worker{st: st, pub: pub, cfg: cfg, log: log, metrics: newMetrics(reg), wake: make(chan struct{}, 1)}, nil
}

// Notify says a sample was queued.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is done; its claims are released when it returns, and it closes the publisher.
func (w *Worker) Run(ctx context.Context) error {
	defer w.pub.Close()
	defer func() {
		if _, err := w.st.ReleaseSink(context.WithoutCancel(ctx), w.cfg.Owner); err != nil {
			w.log.Warn("could not release the sink queue's claims", "err", err)
		}
	}()
	if n, err := w.st.ReleaseSink(ctx, w.cfg.Owner); err != nil {
		w.log.Warn("could not release claims of a previous run", "err", err)
	} else if n > 0 {
		w.log.Info("publishing again samples a previous run had claimed", "samples", n)
	}
	tick := time.NewTicker(w.cfg.ScanInterval)
	defer tick.Stop()
	errLogs := logx.NewLimiter(time.Minute)
	failures := 0
	for {
		w.updateStats(ctx)
		published, err := w.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait <-chan time.Time
		switch {
		case err != nil:
			failures++
			d := w.cfg.Retry.Delay(failures)
			if ok, held := errLogs.Allow("publish", time.Now()); ok {
				w.log.Warn("publishing to the bus failed; retrying with backoff", "err", err, "retry_in", d,
					logx.SuppressedKey, held)
			}
			wait = time.After(d)
		case published > 0:
			failures = 0
			continue // more may be queued
		default:
			failures = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wait:
		case <-w.wake:
		case <-tick.C:
		}
	}
}

// claimLimit is how many samples one round claims: they are published one after the other.
const claimLimit = 16

// round claims due samples and publishes them in order. At the first failure, it gives the remaining
// claims back, due after the backoff, and returns the error.
func (w *Worker) round(ctx context.Context) (int, error) {
	now := time.Now()
	entries, err := w.st.ClaimSink(ctx, w.cfg.Owner, now, w.cfg.Lease, claimLimit)
	if err != nil {
		w.metrics.failures.WithLabelValues(reasonStore).Inc()
		return 0, err
	}
	for i, e := range entries {
		err := w.publishSample(ctx, e)
		if r := reasonOf(err); err != nil && (r == reasonCorrupt || r == reasonEncode) {
			// It can never succeed: retrying would hold every later sample back.
			w.metrics.failures.WithLabelValues(r).Inc()
			w.log.Error("a sample cannot be published and is dropped from the sink queue", "sample", e.SampleID, "err", err)
			err = nil
		}
		if err == nil {
			ok, cerr := w.st.CompleteSink(ctx, e.SampleID, w.cfg.Owner)
			if cerr != nil {
				err = &Error{Reason: reasonStore, Err: cerr}
			} else if ok {
				w.metrics.samples.Inc()
			}
		}
		if err != nil {
			reason := reasonOf(err)
			if ctx.Err() != nil {
				return i, err // Run releases the claims
			}
			w.metrics.failures.WithLabelValues(reason).Inc()
			due := time.Now().Add(w.cfg.Retry.Delay(e.Attempts + 1))
			for _, r := range entries[i:] {
				msg := ""
				if r.SampleID == e.SampleID {
					msg = err.Error()
				}
				if rerr := w.st.RetrySink(ctx, r.SampleID, w.cfg.Owner, due, msg); rerr != nil {
					w.log.Warn("could not give a sink claim back; it runs out with its lease", "sample", r.SampleID, "err", rerr)
				}
			}
			return i, fmt.Errorf("sample %s: %w", e.SampleID, err)
		}
	}
	return len(entries), nil
}

// publishSample publishes every message of one sample, MaxInFlight at a time.
func (w *Worker) publishSample(ctx context.Context, e store.SinkEntry) error {
	x, err := w.st.GetSample(ctx, e.SampleID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // pruned meanwhile: nothing left to publish
	}
	if err != nil {
		return &Error{Reason: reasonStore, Err: err}
	}
	b, err := newBatcher(x)
	if err != nil {
		return err
	}
	var pending []Message
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, w.cfg.AckTimeout)
		defer cancel()
		if err := w.pub.Publish(actx, pending); err != nil {
			return err
		}
		for _, m := range pending {
			w.metrics.messages.Inc()
			w.metrics.flows.Add(float64(m.Flows))
		}
		pending = pending[:0]
		return nil
	}
	add := func(ms []Message) error {
		for _, m := range ms {
			pending = append(pending, m)
			if len(pending) == w.cfg.MaxInFlight {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err = w.eachChunk(ctx, x, func(flows []*flowfleetv1.Flow) error {
		ms, err := b.add(flows)
		if err != nil {
			return err
		}
		return add(ms)
	})
	if err != nil {
		return err
	}
	last, err := b.finish()
	if err != nil {
		return err
	}
	if err := add(last); err != nil {
		return err
	}
	return flush()
}

// eachChunk calls fn with the sample's flows, one stored chunk (store.FlowChunkFlows flows) at a time;
// a sample stored whole (before migration 00005) comes in one call.
func (w *Worker) eachChunk(ctx context.Context, x *store.Sample, fn func([]*flowfleetv1.Flow) error) error {
	const k = store.FlowChunkFlows
	n := (x.FlowCount + k - 1) / k
	seen := 0
	for from := 0; from < n; from++ {
		chunks, err := w.st.SampleFlowChunks(ctx, x.ID, from, from+1)
		if err != nil {
			return &Error{Reason: reasonStore, Err: err}
		}
		if len(chunks) == 0 && from == 0 {
			enc, err := w.st.SampleFlows(ctx, x.ID)
			if err != nil {
				return &Error{Reason: reasonStore, Err: err}
			}
			chunks = [][]byte{enc}
			n = 0
		}
		for _, c := range chunks {
			flows, err := flowpb.Decode(c)
			if err != nil {
				return &Error{Reason: reasonCorrupt, Err: err}
			}
			seen += len(flows)
			if err := fn(flows); err != nil {
				return err
			}
		}
	}
	if seen != x.FlowCount {
		return &Error{Reason: reasonCorrupt, Err: fmt.Errorf("%d flows stored, %d recorded", seen, x.FlowCount)}
	}
	return nil
}

// batcher cuts a sample's flows into messages in flow order, so that the same sample always gives the
// same messages (and ids).
type batcher struct {
	x    *store.Sample
	meta dataset.Meta
	buf  bytes.Buffer
	// line holds one flow's JSON line; jw writes into it, and its Close flushes (the writer stays
	// usable: it only buffers).
	line  bytes.Buffer
	jw    dataset.Writer
	flows int
	batch int
}

func newBatcher(x *store.Sample) (*batcher, error) {
	ws := time.Unix(x.WindowStart, 0).UTC()
	b := &batcher{x: x, meta: dataset.Meta{Host: x.Host, SampleID: x.ID, WindowStart: &ws}}
	jw, err := dataset.NewWriter(dataset.JSONL, &b.line)
	if err != nil {
		return nil, &Error{Reason: reasonEncode, Err: err}
	}
	b.jw = jw
	return b, nil
}

func (b *batcher) add(flows []*flowfleetv1.Flow) ([]Message, error) {
	var out []Message
	for _, f := range flows {
		b.line.Reset()
		if err := b.jw.Write(dataset.FromProto(f, b.meta)); err != nil {
			return nil, &Error{Reason: reasonEncode, Err: err}
		}
		if err := b.jw.Close(); err != nil {
			return nil, &Error{Reason: reasonEncode, Err: err}
		}
		if b.line.Len() > MaxMessageBytes {
			return nil, &Error{Reason: reasonEncode, Err: fmt.Errorf("a flow's record is %d bytes, over the message bound", b.line.Len())}
		}
		if b.flows == MaxMessageFlows || b.buf.Len()+b.line.Len() > MaxMessageBytes {
			out = append(out, b.cut())
		}
		b.buf.Write(b.line.Bytes())
		b.flows++
	}
	return out, nil
}

// finish returns the last message (none for a sample without flows).
func (b *batcher) finish() ([]Message, error) {
	if b.flows == 0 {
		return nil, nil
	}
	return []Message{b.cut()}, nil
}

func (b *batcher) cut() Message {
	m := Message{ID: b.x.ID + "/" + strconv.Itoa(b.x.Revision) + "/" + strconv.Itoa(b.batch), SampleID: b.x.ID,
		Host: b.x.Host, WindowStart: b.x.WindowStart, Revision: b.x.Revision, Batch: b.batch, Flows: b.flows,
		SampleFlows: b.x.FlowCount, Data: bytes.Clone(b.buf.Bytes())}
	b.buf.Reset()
	b.flows = 0
	b.batch++
	return m
}

func (w *Worker) updateStats(ctx context.Context) {
	st, err := w.st.SinkStats(ctx)
	if err != nil {
		return
	}
	w.metrics.queueLength.Set(float64(st.Queued))
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	w.metrics.oldestAge.Set(age)
}
