//go:build !cgo

package capture

import (
	"errors"
	"time"
)

// readTimeout bounds a blocking read, so Run notices its context ending (pcap.go has it in cgo builds).
const readTimeout = 250 * time.Millisecond

// openPcap in a build without cgo (the container image's static sensor): libpcap cannot be linked, so the
// pcap method is refused with the way out.
func openPcap(Config) (Source, error) {
	return nil, errors.New("capture method pcap is not available: this sensor was built without cgo (no libpcap); use --capture afpacket")
}
