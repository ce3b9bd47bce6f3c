package flowpb

import (
	"errors"
	"math"
	"net/netip"
	"unicode/utf8"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
)

// Check applies the validation rules proto/flowfleet/v1/flow.proto writes for Flow, without the CEL
// interpreter: a sensor vets every flow with it before spooling (a flow the collector would refuse must
// never block a stream), and at a few tens of nanoseconds a flow it keeps a window flush of a million
// flows short. TestCheckAgreesWithProtovalidate holds it to the proto's rules.
func Check(f *flowfleetv1.Flow) error {
	if err := checkAddr(f.GetSrcAddr()); err != nil {
		return errors.New("src_addr: " + err.Error())
	}
	if err := checkAddr(f.GetDstAddr()); err != nil {
		return errors.New("dst_addr: " + err.Error())
	}
	if !portText(f.GetSrcPort()) {
		return errors.New("src_port: not empty or a number 0 to 65535")
	}
	if !portText(f.GetDstPort()) {
		return errors.New("dst_port: not empty or a number 0 to 65535")
	}
	if n := f.GetDstName(); n == "" || len(n) > MaxNameBytes {
		return errors.New("dst_name: empty or longer than 1024 bytes")
	}
	if _, ok := flowfleetv1.NameSource_name[int32(f.GetNameSource())]; !ok || f.GetNameSource() == 0 {
		return errors.New("name_source: unset or undefined")
	}
	if _, ok := flowfleetv1.Protocol_name[int32(f.GetProtocol())]; !ok || f.GetProtocol() == 0 {
		return errors.New("protocol: unset or undefined")
	}
	if f.GetSrcPkts() < 0 || f.GetDstPkts() < 0 {
		return errors.New("packet counts must not be negative")
	}
	for _, t := range []float64{f.GetFirstSeen(), f.GetLastSeen()} {
		if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
			return errors.New("first_seen/last_seen must be finite and not negative")
		}
	}
	if f.GetWindowStart() < 0 {
		return errors.New("window_start must not be negative")
	}
	if f.GetProtocol() == flowfleetv1.Protocol_PROTOCOL_ICMP && (f.GetSrcPort() != "" || f.GetDstPort() != "") {
		return errors.New("an ICMP flow carries no ports")
	}
	if !(f.GetLastSeen() >= f.GetFirstSeen()) {
		return errors.New("last_seen must not be before first_seen")
	}
	return nil
}

func checkAddr(s string) error {
	if s == "" || utf8.RuneCountInString(s) > 45 {
		return errors.New("empty or longer than 45 characters")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return errors.New("not an IP address")
	}
	return nil
}

// portText reports "" or 1–5 ASCII digits worth at most 65535 (leading zeros allowed, as the proto's
// pattern allows them).
func portText(s string) bool {
	if len(s) > 5 {
		return false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		v = 10*v + int(s[i]-'0')
	}
	return v <= 65535
}
