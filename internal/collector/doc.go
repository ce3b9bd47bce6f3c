// Package collector is the centre of a FlowFleet fleet: it takes flow batches from sensors over the
// IngestService stream (acknowledging each batch only once it is durable in the store), closes each
// host's windows into samples — kept in the store and written as BayseFlow files under the data
// directory after the commit (internal/collector/closer) — and answers SampleService and FleetService
// queries. With Config.Retention and Config.BatchRetention set, a pruner deletes old samples and batches (retention.go, docs/retention.md).
//
// # Usage
//
//	c, _ := collector.New(store, collector.Config{DataDir: dir}, logger, prometheus.NewRegistry())
//	srv, hs, _ := c.NewGRPCServer(creds)   // mTLS credentials from internal/auth; handshake timeout
//	g, gctx := errgroup.WithContext(ctx)  // every goroutine in one group (command.go's run)
//	g.Go(func() error { return c.Run(runCtx) })            // committer, window closer, relay, pruner
//	g.Go(func() error { c.WatchHealth(gctx, hs, 5*time.Second); return nil })
//	g.Go(func() error { return srv.Serve(c.LimitListener(lis)) })
//	http.Handle("/", c.HealthHandler())   // /healthz and /readyz, on the metrics listener
//
// At shutdown: Drain, then stop the gRPC server, then end Run's context (batches received are still
// committed), and wait for the group. Readiness (health.go) and connection limits (conns.go) are
// described where they are enforced; their defaults and metrics are in docs/limits.md.
//
// Identity comes from the peer certificate (internal/auth), never from a message field: a sensor's
// flows land under the name in its certificate.
package collector
