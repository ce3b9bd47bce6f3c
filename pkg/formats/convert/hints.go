package convert

import (
	"encoding/binary"
	"fmt"

	"github.com/flowfleet/flowfleet/pkg/flow"
)

// countLinkHints counts, for captureHints, the frames the reference's rules drop without a word: tagged
// Ethernet frames (when VLAN decoding is off) and Linux cooked v1 frames that fail R-DEC-10's layout
// test. It only reads the frame, so the conversion's output does not change.
func countLinkHints(res *Result, link flow.LinkType, data []byte, countVLAN bool) {
	switch link {
	case flow.LinkEthernet:
		if countVLAN && len(data) >= 14 {
			switch binary.BigEndian.Uint16(data[12:14]) {
			case 0x8100, 0x88a8, 0x9100:
				res.VLANFrames++
			}
		}
	case flow.LinkLinuxSLL:
		if len(data) < 16 {
			return
		}
		et := binary.BigEndian.Uint16(data[14:16])
		if et != 0x0800 && et != 0x86dd {
			return
		}
		if data[4] != 0 || data[5] != 6 {
			res.CookedNoAddr++
		}
	}
}

// captureHints explains a capture's missing flows from the counters countLinkHints and the reader left.
func captureHints(res *Result, flows int) []string {
	var hints []string
	if res.VLANFrames > 0 {
		hints = append(hints, fmt.Sprintf("%s: %d of %d frame(s) are 802.1Q/QinQ-tagged and were not decoded, as the reference does not (R-PCAP-3); %d flow(s) came from the rest; --decode-vlan decodes them",
			res.Input, res.VLANFrames, res.Frames, flows))
	}
	if res.CookedNoAddr > 0 {
		hints = append(hints, fmt.Sprintf("%s: %d Linux cooked frame(s) have no 6-byte link-layer address (a tun, ppp or other point-to-point device) and the reference's cooked-capture rule drops them (R-DEC-10); %d flow(s) came from the rest. The sensor rewrites cooked frames into Ethernet layout and keeps them; to convert such a capture, capture on the device itself (raw IP) instead of \"any\"",
			res.Input, res.CookedNoAddr, flows))
	}
	if res.Mixed {
		hints = append(hints, fmt.Sprintf("%s: ONLY PART OF THIS CAPTURE WAS CONVERTED: the pcapng file goes on with an interface of another link type or snapshot length (a file merged by mergecap from different captures?), where libpcap, and so the reference, stop reading; %d frame(s) before it gave %d flow(s). Convert the original captures one by one, or pass --all-interfaces to read every interface (a departure from the reference)",
			res.Input, res.Frames, flows))
	}
	return hints
}
