package auth

import (
	"fmt"
	"slices"
	"strings"
)

// AnyRole in a Policy rule admits every authenticated identity, whatever its role.
const AnyRole Role = "*"

// Policy maps gRPC methods to the roles allowed to call them. A key is either a full method name
// ("/flowfleet.v1.SampleService/GetSample") or a whole service ("/flowfleet.v1.SampleService/*"); an
// exact method rule wins over its service's rule. A method no rule covers is denied to everyone.
//
// A Policy must not be changed once an Authorizer uses it.
type Policy map[string][]Role

// Service names used by DefaultPolicy.
const (
	IngestServiceName     = "flowfleet.v1.IngestService"
	SampleServiceName     = "flowfleet.v1.SampleService"
	FleetServiceName      = "flowfleet.v1.FleetService"
	FlowServiceName       = "flowfleet.v1.FlowService"
	healthServiceName     = "grpc.health.v1.Health"
	reflectionV1Name      = "grpc.reflection.v1.ServerReflection"
	reflectionV1AlphaName = "grpc.reflection.v1alpha.ServerReflection"
)

// DefaultPolicy is FlowFleet's access policy:
//
//   - IngestService: sensor, admin
//   - SampleService, FleetService and FlowService: reader, admin; SampleService.RelaySample (which re-queues an
//     upload) and SampleService.EnrichSample (which re-queues enrichment): admin only
//   - grpc.health.v1.Health and server reflection (v1 and v1alpha): any authenticated identity
//
// Every other method is denied.
func DefaultPolicy() Policy {
	return Policy{
		"/" + IngestServiceName + "/*":            {RoleSensor, RoleAdmin},
		"/" + SampleServiceName + "/*":            {RoleReader, RoleAdmin},
		"/" + SampleServiceName + "/RelaySample":  {RoleAdmin},
		"/" + SampleServiceName + "/EnrichSample": {RoleAdmin},
		"/" + FleetServiceName + "/*":             {RoleReader, RoleAdmin},
		"/" + FlowServiceName + "/*":              {RoleReader, RoleAdmin},
		"/" + healthServiceName + "/*":            {AnyRole},
		"/" + reflectionV1Name + "/*":             {AnyRole},
		"/" + reflectionV1AlphaName + "/*":        {AnyRole},
	}
}

// Roles returns the roles allowed to call fullMethod, and false when no rule covers it.
func (p Policy) Roles(fullMethod string) ([]Role, bool) {
	if roles, ok := p[fullMethod]; ok {
		return roles, true
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		if roles, ok := p[fullMethod[:i]+"/*"]; ok {
			return roles, true
		}
	}
	return nil, false
}

// Allow returns nil when role may call fullMethod, and otherwise an error naming the roles the
// method requires.
func (p Policy) Allow(role Role, fullMethod string) error {
	roles, ok := p.Roles(fullMethod)
	if !ok {
		return fmt.Errorf("method %s is not open to any role", fullMethod)
	}
	if slices.Contains(roles, AnyRole) || slices.Contains(roles, role) {
		return nil
	}
	return fmt.Errorf("role %q may not call %s: it requires role %s", role, fullMethod, joinRoles(roles))
}

func joinRoles(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	switch len(s) {
	case 0:
		return "(none)"
	case 1:
		return s[0]
	default:
		return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
	}
}
