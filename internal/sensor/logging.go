package sensor

import (
	"github.com/flowfleet/flowfleet/internal/buildinfo"
)

// SoftwareVersion is the version the sensor sends in each Hello (buildinfo.Version).
func SoftwareVersion() string { return buildinfo.Version() }
