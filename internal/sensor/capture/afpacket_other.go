//go:build !linux

package capture

import "errors"

func openAFPacket(Config) (Source, error) {
	return nil, errors.New("capture: the afpacket method needs Linux; use --capture pcap")
}
