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
	"github.com/flowfleet/flowfleet/internal/sensor/metrics"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
)

func TestCertExpiryWarning(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(pki.InitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		days int
		warn bool
	}{{7, true}, {30, false}} {
		leaf, err := ca.Issue(pki.IssueOptions{Role: auth.RoleSensor, Name: "s" + string(rune('a'+c.days%26)), Days: c.days})
		if err != nil {
			t.Fatal(err)
		}
		paths, err := leaf.WriteFiles(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		m := metrics.New(prometheus.NewRegistry())
		checkCert(paths.Cert, time.Now(), m, slog.New(slog.NewTextHandler(&buf, nil)))
		left := sensortest.Value(m.CertExpiry)
		if want := float64(c.days) * 86400; left > want || left < want-float64(pki.Backdate/time.Second)-60 {
			t.Errorf("%d days: gauge %v s", c.days, left)
		}
		if got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "expires soon"); got != c.warn {
			t.Errorf("%d days: warned %v, want %v: %s", c.days, got, c.warn, buf.String())
		}
	}
}
