package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/flowfleet/flowfleet/internal/auth"
)

// Dial returns the Publisher for cfg.URL (defaults set, checked). It does not wait for the bus: a bus
// that is down is retried by the Worker.
func Dial(cfg Config, log *slog.Logger) (Publisher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kind, useTLS, err := cfg.kind()
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if useTLS {
		if tc, err = clientTLS(cfg, log); err != nil {
			return nil, err
		}
	}
	if kind == "redis" {
		if log == nil {
			log = slog.Default()
		}
		// go-redis writes its connection-pool notes with the standard logger, outside the collector's
		// log format; the Worker logs each failure itself (rate-limited), so they go to debug. The
		// logger is go-redis's one global: the last Dial's wins.
		redis.SetLogger(redisLog{log})
		return newRedis(cfg, tc)
	}
	return newNATS(cfg, tc)
}

// clientTLS is the mutual-TLS configuration for the bus: the client certificate, and the server's
// certificate verified against CAFile for the URL's host (files reloaded when they change).
func clientTLS(cfg Config, log *slog.Logger) (*tls.Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sink: url: %w", err)
	}
	tc, err := auth.ClientTLSConfig(auth.Files{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, CAFile: cfg.CAFile}, u.Hostname(), log)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	tc.NextProtos = nil // not HTTP/2
	return tc, nil
}

// classify gives a publish error its reason.
func classify(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()):
		return &Error{Reason: reasonTimeout, Err: err}
	case errors.As(err, &ne), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout):
		return &Error{Reason: reasonUnavailable, Err: err}
	}
	var re redis.Error
	if errors.As(err, &re) {
		return &Error{Reason: reasonRejected, Err: err}
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return &Error{Reason: reasonRejected, Err: err}
	}
	return &Error{Reason: reasonUnavailable, Err: err}
}

// --- Redis Streams ---

// redisLog passes go-redis's log lines to slog at debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// redisPublisher adds each message to a stream with XADD (entry id chosen by Redis); the fields are
// those of docs/sink.md. The XADD reply is the acknowledgement; with appendfsync always, an
// acknowledged entry survives a crash of Redis.
type redisPublisher struct {
	c      *redis.Client
	stream string
}

func newRedis(cfg Config, tc *tls.Config) (*redisPublisher, error) {
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sink: redis url %q: %w", Redact(cfg.URL), err)
	}
	opts.TLSConfig = tc
	// The Worker retries whole samples with backoff; the client's own retries would only hide an
	// outage. Timeouts come from the context (AckTimeout).
	opts.MaxRetries = -1
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = cfg.AckTimeout
	opts.PoolSize = 2
	return &redisPublisher{c: redis.NewClient(opts), stream: cfg.Stream}, nil
}

func (p *redisPublisher) Publish(ctx context.Context, msgs []Message) error {
	cmds, err := p.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, m := range msgs {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: p.stream, Values: []any{
				"id", m.ID, "sample", m.SampleID, "host", m.Host, "window_start", m.WindowStart,
				"revision", m.Revision, "batch", m.Batch, "flows", m.Flows, "sample_flows", m.SampleFlows,
				"data", m.Data}})
		}
		return nil
	})
	if err != nil {
		return classify(ctx, fmt.Errorf("redis xadd: %w", err))
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return classify(ctx, fmt.Errorf("redis xadd: %w", err))
		}
	}
	return nil
}

func (p *redisPublisher) Close() error { return p.c.Close() }

// --- NATS JetStream ---

// natsPublisher publishes each message on the subject with PublishMsgAsync and waits for every PubAck.
// The message id goes into Nats-Msg-Id, so JetStream drops a copy sent again within the stream's
// duplicate window (2 minutes by default).
type natsPublisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	mu      sync.Mutex
	ensured bool // the stream was found or created
}

func newNATS(cfg Config, tc *tls.Config) (*natsPublisher, error) {
	opts := []nats.Option{nats.Name("flowfleet-collector"), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second), nats.Timeout(cfg.AckTimeout), nats.ReconnectBufSize(-1),
		nats.NoCallbacksAfterClientClose()}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("sink: nats %q: %w", Redact(cfg.URL), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("sink: jetstream: %w", err)
	}
	return &natsPublisher{nc: nc, js: js, cfg: cfg}, nil
}

// ensure finds the stream, or creates it for the subject.
func (p *natsPublisher) ensure(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ensured {
		return nil
	}
	_, err := p.js.Stream(ctx, p.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{Name: p.cfg.Stream, Subjects: []string{p.cfg.Subject},
			Storage: jetstream.FileStorage})
	}
	if err != nil {
		return classify(ctx, fmt.Errorf("jetstream stream %s: %w", p.cfg.Stream, err))
	}
	p.ensured = true
	return nil
}

func (p *natsPublisher) Publish(ctx context.Context, msgs []Message) error {
	if err := p.ensure(ctx); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		nm := nats.NewMsg(p.cfg.Subject)
		nm.Header.Set(jetstream.MsgIDHeader, m.ID)
		nm.Header.Set("Flowfleet-Sample", m.SampleID)
		nm.Header.Set("Flowfleet-Host", m.Host)
		nm.Header.Set("Flowfleet-Window-Start", strconv.FormatInt(m.WindowStart, 10))
		nm.Header.Set("Flowfleet-Revision", strconv.Itoa(m.Revision))
		nm.Header.Set("Flowfleet-Batch", strconv.Itoa(m.Batch))
		nm.Header.Set("Flowfleet-Flows", strconv.Itoa(m.Flows))
		nm.Header.Set("Flowfleet-Sample-Flows", strconv.Itoa(m.SampleFlows))
		nm.Header.Set("Content-Type", "application/jsonl")
		nm.Data = m.Data
		f, err := p.js.PublishMsgAsync(nm, jetstream.WithExpectStream(p.cfg.Stream))
		if err != nil {
			p.reset()
			return classify(ctx, fmt.Errorf("jetstream publish: %w", err))
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			p.reset()
			return classify(ctx, fmt.Errorf("jetstream publish: %w", err))
		case <-ctx.Done():
			return classify(ctx, fmt.Errorf("jetstream publish: waiting for the acknowledgement: %w", ctx.Err()))
		}
	}
	return nil
}

// reset makes the next Publish look for the stream again (it may have been deleted).
func (p *natsPublisher) reset() {
	p.mu.Lock()
	p.ensured = false
	p.mu.Unlock()
}

func (p *natsPublisher) Close() error {
	p.nc.Close()
	return nil
}
