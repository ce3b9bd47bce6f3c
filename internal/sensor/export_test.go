package sensor

import "context"

// WithFrameHook returns opts with a hook run on each frame just before the flow engine.
func WithFrameHook(opts Options, fn func(data []byte)) Options {
	opts.frameHook = fn
	return opts
}

// AddComponent adds a long-lived goroutine to the sensor's errgroup (call it before Run).
func AddComponent(s *Sensor, fn func(ctx context.Context) error) {
	s.components = append(s.components, fn)
}

// CloseMetricsListener closes the metrics listener, so that the metrics server fails in Run.
func CloseMetricsListener(s *Sensor) error { return s.metrics.Close() }
