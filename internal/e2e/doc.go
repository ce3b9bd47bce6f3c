// Package e2e holds FlowFleet's end-to-end tests: real collector and sensor processes, real capture in
// network namespaces the tests create, and the README's own commands. They need root (namespaces,
// capture) and skip with a message otherwise.
package e2e
