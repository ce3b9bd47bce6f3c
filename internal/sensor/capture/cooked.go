package capture

import (
	"encoding/binary"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// Linux cooked capture header sizes.
const (
	sllHeaderLen  = 16
	sll2HeaderLen = 20
)

// CookedToEthernet copies a Linux cooked capture frame (SLL v1, link type 113, or SLL v2, 276) into a
// new Ethernet-layout frame: destination MAC zero, source MAC the cooked header's link-layer address
// when it has 6 bytes, EtherType the cooked header's protocol, then the payload. It returns nil for a
// frame too short for its header. Any other link type is copied unchanged.
func CookedToEthernet(link flow.LinkType, data []byte) []byte {
	var proto uint16
	var addr []byte
	var payload []byte
	switch link {
	case flow.LinkLinuxSLL:
		if len(data) < sllHeaderLen {
			return nil
		}
		proto = binary.BigEndian.Uint16(data[14:16])
		if binary.BigEndian.Uint16(data[4:6]) == 6 {
			addr = data[6:12]
		}
		payload = data[sllHeaderLen:]
	case flow.LinkLinuxSLL2:
		if len(data) < sll2HeaderLen {
			return nil
		}
		proto = binary.BigEndian.Uint16(data[0:2])
		if data[11] == 6 {
			addr = data[12:18]
		}
		payload = data[sll2HeaderLen:]
	default:
		return append([]byte(nil), data...)
	}
	out := make([]byte, 14+len(payload))
	copy(out[6:12], addr)
	binary.BigEndian.PutUint16(out[12:14], proto)
	copy(out[14:], payload)
	return out
}
