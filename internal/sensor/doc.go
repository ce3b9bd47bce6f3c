// Package sensor is FlowFleet's sensor: it captures packets (package capture), assembles flows in
// windows with pkg/flow (package window), writes every batch to a durable, bounded spool (package spool)
// and streams the batches to a collector over mutual TLS (package ship). cmd/sensor only wires the
// command from NewCommand to the process's signals.
//
// # Usage
//
// As a process: run the sensor binary with flags, FLOWFLEET_* environment variables or a config file
// (see NewCommand and docs/sensor.md); SIGTERM or SIGINT shuts it down gracefully and it exits 0.
//
// In process (tests, embedding):
//
//  1. Start from DefaultConfig and fill in Collectors, Interfaces, CertFile, KeyFile, CAFile and
//     SpoolDir.
//  2. New(cfg, Options{Logger: …}) validates the configuration and opens the spool, the capture sources
//     and the metrics listener, so configuration errors show at once.
//  3. Run(ctx) runs until ctx ends, then flushes the current window, spools it and tries to deliver it
//     for up to Config.ShutdownTimeout. Cancelling ctx is what SIGTERM does.
//
// # Goroutines
//
// One goroutine per capture source copies packets into a bounded queue; one engine goroutine (the one
// calling Run) owns the flow engine, the windows and the loss accounting; the windower's emitter turns
// flushed windows into batches; the shipper has a sending and a receiving goroutine per stream; the
// certificate watcher and the metrics server have one each. The long-lived ones run in an errgroup: the
// first to fail ends Run with its error (after flushing the current window into the spool). Run owns all
// of them and waits for every one before it returns.
//
// A panic of the flow engine on one frame is recovered at the frame boundary (window.Windower), counted
// as a packet drop with reason engine_panic, and the sensor goes on.
package sensor
