package sensor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
)

// Certificate expiry checks.
const (
	CertCheckInterval = time.Hour
	CertWarnBefore    = 14 * 24 * time.Hour
)

// certNotAfter reads the first certificate of a PEM file and returns its expiry.
func certNotAfter(path string) (time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return time.Time{}, errors.New("no PEM certificate")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("parse certificate: %w", err)
		}
		return c.NotAfter, nil
	}
}

// checkCert sets the expiry gauge and warns when the certificate expires within CertWarnBefore.
func checkCert(path string, now time.Time, m *metrics.Metrics, log *slog.Logger) {
	notAfter, err := certNotAfter(path)
	if err != nil {
		log.Warn("client certificate unreadable for the expiry check", slog.String("cert_file", path), slog.String("err", err.Error()))
		return
	}
	left := notAfter.Sub(now)
	m.CertExpiry.Set(left.Seconds())
	switch {
	case left <= 0:
		log.Error("client certificate has expired: collectors will refuse the sensor until it is renewed",
			slog.String("cert_file", path), slog.Time("not_after", notAfter))
	case left < CertWarnBefore:
		log.Warn("client certificate expires soon; renew it (the sensor picks up the new files without a restart)",
			slog.String("cert_file", path), slog.Time("not_after", notAfter), slog.Duration("left", left.Round(time.Minute)))
	}
}

func watchCert(ctx context.Context, path string, m *metrics.Metrics, log *slog.Logger) {
	t := time.NewTicker(CertCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			checkCert(path, now, m, log)
		}
	}
}
