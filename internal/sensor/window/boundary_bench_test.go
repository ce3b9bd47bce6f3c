package window

import (
	"testing"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/sensor/sensortest"
	"github.com/flowfleet/flowfleet/pkg/flow"
)

type discard struct{}

func (discard) Batch([]*flowfleetv1.Flow)        {}
func (discard) WindowEnd(*flowfleetv1.WindowEnd) {}

// BenchmarkFrameBoundary measures what the recover boundary around the engine (feed) costs per frame,
// against calling the engine directly (bare), on the same 1,024 UDP frames of distinct flows.
func BenchmarkFrameBoundary(b *testing.B) {
	frames := make([][]byte, 1024)
	for i := range frames {
		frames[i] = sensortest.UDPFrame("10.1.0.5", uint16(20000+i), "10.2.0.9", 53, []byte("benchmark-payload-0123456789"))
	}
	const sec = 1_700_000_100
	for _, bc := range []struct {
		name string
		fn   func(w *Windower, i int)
	}{
		{"recover", func(w *Windower, i int) { w.feed(flow.LinkEthernet, sec, uint32(i%1_000_000), frames[i%len(frames)]) }},
		{"bare", func(w *Windower, i int) {
			w.eng.Packet(flow.LinkEthernet, flow.FrameTime(sec, uint32(i%1_000_000)), frames[i%len(frames)])
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := New(Options{Logger: sensortest.QuietLogger()}, discard{})
			defer w.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				bc.fn(w, i)
				i++
			}
		})
	}
}
