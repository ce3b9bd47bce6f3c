// Package collector is the centre of a FlowFleet fleet: it takes flow batches from sensors over the
// IngestService stream (acknowledging each batch only once it is durable in the store), closes each
// host's windows into samples — BayseFlow files written atomically under the data directory and kept in
// the store — and answers SampleService and FleetService queries. With Config.Retention and
// Config.BatchRetention set, a pruner deletes old samples and batches (retention.go, docs/retention.md).
//
// # Usage
//
//	c, _ := collector.New(store, collector.Config{DataDir: dir}, logger, prometheus.NewRegistry())
//	srv := c.NewGRPCServer(creds)   // mTLS credentials from internal/auth
//	go c.Run(ctx)                   // batch committer, window closer, relay, pruner
//	srv.Serve(listener)
//
// Identity comes from the peer certificate (internal/auth), never from a message field: a sensor's
// flows land under the name in its certificate.
package collector
