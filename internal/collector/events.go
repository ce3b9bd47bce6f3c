package collector

import (
	"sync"

	"github.com/flowfleet/flowfleet/internal/store"
)

// event is a sample that was written or changed state.
type event struct {
	sample   store.Sample
	previous store.SampleState
}

// hub fans sample events out to WatchSamples streams. A slow watcher does not block the collector: its
// buffer is bounded, and events that do not fit are counted as lost for that watcher.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	host string
	ch   chan event
	mu   sync.Mutex
	lost uint64
}

func newHub() *hub { return &hub{subs: make(map[*subscriber]struct{})} }

func (h *hub) subscribe(host string) *subscriber {
	s := &subscriber{host: host, ch: make(chan event, 256)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (h *hub) publish(s store.Sample, previous store.SampleState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if sub.host != "" && sub.host != s.Host {
			continue
		}
		select {
		case sub.ch <- event{sample: s, previous: previous}:
		default:
			sub.mu.Lock()
			sub.lost++
			sub.mu.Unlock()
		}
	}
}

// takeLost returns and clears the number of events lost since the last call.
func (s *subscriber) takeLost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.lost
	s.lost = 0
	return n
}
