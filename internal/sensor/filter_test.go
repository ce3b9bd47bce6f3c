package sensor_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/flowfleet/flowfleet/internal/sensor"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
)

func TestCollectorFilter(t *testing.T) {
	resolve := func(_ context.Context, host string) ([]net.IP, error) {
		switch host {
		case "c.example":
			return []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}, nil
		}
		return nil, errors.New("no such host")
	}
	got := sensor.CollectorFilter(context.Background(), []string{"10.0.0.1:7443", "c.example:9000", "[::1]:7443", "gone.example:1", "10.0.0.1:7443"},
		resolve, sensortest.QuietLogger())
	want := "not (host 10.0.0.1 and tcp port 7443) and not (host 192.0.2.7 and tcp port 9000) and " +
		"not (host 2001:db8::7 and tcp port 9000) and not (host ::1 and tcp port 7443)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if f := sensor.CombineFilter("udp", got); f != "(udp) and "+want {
		t.Errorf("combined %s", f)
	}
	if f := sensor.CombineFilter("", "x"); f != "x" {
		t.Errorf("combined %s", f)
	}
	if f := sensor.CombineFilter("udp", ""); f != "udp" {
		t.Errorf("combined %s", f)
	}
}
