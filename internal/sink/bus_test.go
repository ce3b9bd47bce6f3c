package sink

import (
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/sink/bustest"
)

var waitFor = bustest.WaitFor

type busServer = bustest.Server

func startBus(t *testing.T, kind string, p *pkitest.PKI) *busServer { return bustest.Start(t, kind, p) }

// config is a sink configuration for the server, with a client certificate from the server's PKI.
func busConfig(t *testing.T, b *busServer) Config {
	cfg := Config{URL: b.URL(), Owner: "test", Retry: fastRetry, ScanInterval: 50 * time.Millisecond, AckTimeout: 5 * time.Second}
	if b.TLS != nil {
		f := b.ClientFiles(t, "collector-1")
		cfg.CertFile, cfg.KeyFile, cfg.CAFile = f.CertFile, f.KeyFile, f.CAFile
	}
	return cfg
}
