package sensor

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/pki/pkitest"
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
)

func TestCertExpiryWarning(t *testing.T) {
	p := pkitest.New(t)
	for _, c := range []struct {
		days int
		warn bool
	}{{7, true}, {30, false}} {
		files := p.Issue(t, auth.RoleSensor, "s"+string(rune('a'+c.days%26)), pki.IssueOptions{Days: c.days})
		var buf bytes.Buffer
		m := metrics.New(prometheus.NewRegistry())
		checkCert(files.CertFile, time.Now(), m, slog.New(slog.NewTextHandler(&buf, nil)))
		left := sensortest.Value(m.CertExpiry)
		if want := float64(c.days) * 86400; left > want || left < want-float64(pki.Backdate/time.Second)-60 {
			t.Errorf("%d days: gauge %v s", c.days, left)
		}
		if got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "expires soon"); got != c.warn {
			t.Errorf("%d days: warned %v, want %v: %s", c.days, got, c.warn, buf.String())
		}
	}
}
