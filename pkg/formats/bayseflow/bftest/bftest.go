// Package bftest holds test helpers for BayseFlow files.
package bftest

import (
	"reflect"
	"testing"

	"github.com/flowfleet/flowfleet/pkg/formats/bayseflow"
)

// Compare reports, on t, every difference between two decoded BayseFlow files as the conformance
// harness compares them: fileName, trafficDate, and each flow in order.
func Compare(t testing.TB, got, want *bayseflow.File) {
	t.Helper()
	if got.FileName != want.FileName {
		t.Errorf("fileName = %q, want %q", got.FileName, want.FileName)
	}
	if got.TrafficDate != want.TrafficDate {
		t.Errorf("trafficDate = %q, want %q", got.TrafficDate, want.TrafficDate)
	}
	if len(got.Flows) != len(want.Flows) {
		t.Fatalf("%d flows, want %d:\n got %+v\nwant %+v", len(got.Flows), len(want.Flows), got.Flows, want.Flows)
	}
	for i := range want.Flows {
		if !reflect.DeepEqual(got.Flows[i], want.Flows[i]) {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, got.Flows[i], want.Flows[i])
		}
	}
}
