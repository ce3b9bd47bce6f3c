package sagefake

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The categories of the fake's rule (Category).
const (
	CategoryMalicious = "fake-malicious"
	CategoryDNS       = "fake-dns"
	CategoryWebTLS    = "fake-web-tls"
	CategoryWeb       = "fake-web"
	CategoryMail      = "fake-mail"
	CategoryOther     = "fake-other"
)

// MaliciousSuffix marks a destination name the fake calls malicious.
const MaliciousSuffix = ".bad.example"

// splitDest splits "name:port" (or "ip:port") at its last colon; port is -1 when there is none.
func splitDest(d string) (string, int) {
	i := strings.LastIndexByte(d, ':')
	if i < 0 {
		return d, -1
	}
	p, err := strconv.Atoi(d[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return d[:i], -1
	}
	return d[:i], p
}

// Category is a flow's flowCategory, from its destinationData ("name:port" or "ip:port"), first rule
// that matches:
//
//	name ends in ".bad.example" (any case, a trailing dot ignored)  fake-malicious
//	port 53                                                        fake-dns
//	port 443 or 8443                                               fake-web-tls
//	port 80 or 8080                                                fake-web
//	port 25, 465, 587, 993 or 995                                  fake-mail
//	anything else                                                  fake-other
func Category(destinationData string) string {
	name, port := splitDest(destinationData)
	if strings.HasSuffix(strings.TrimSuffix(strings.ToLower(name), "."), MaliciousSuffix) {
		return CategoryMalicious
	}
	switch port {
	case 53:
		return CategoryDNS
	case 443, 8443:
		return CategoryWebTLS
	case 80, 8080:
		return CategoryWeb
	case 25, 465, 587, 993, 995:
		return CategoryMail
	}
	return CategoryOther
}

// FlowID is a flow's flowId: the first 16 bytes of SHA-1 over "src|dst|protocolInformation" (the
// uploaded flow's fields, as written), in lower-case hex. Flows with equal fields share an id.
func FlowID(src, dst, protocolInformation string) string {
	sum := sha1.Sum([]byte(src + "|" + dst + "|" + protocolInformation))
	return hex.EncodeToString(sum[:16])
}

// EventID is a flow's eventId: "fake-event-" and the flow id's first 16 digits for a fake-malicious
// flow, "" (no eventId member) for any other.
func EventID(category, flowID string) string {
	if category != CategoryMalicious {
		return ""
	}
	if len(flowID) > 16 {
		flowID = flowID[:16]
	}
	return "fake-event-" + flowID
}

// Count is a flow's global count (GET /sec/v1.0/secflows/{flowId}/count and flowIdCount): 1 plus the
// first two bytes of SHA-256(flowId), big-endian, modulo 1000 — so 1 to 1000, for any id.
func Count(flowID string) int64 {
	sum := sha256.Sum256([]byte(flowID))
	return 1 + int64(binary.BigEndian.Uint16(sum[:2]))%1000
}

// DestinationInfo is the fake's destination metadata.
type DestinationInfo struct {
	Name        string   `json:"name"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Relevance   string   `json:"relevance"`
	Tags        []string `json:"tags"`
}

// Destination is the metadata of "name:port": title "FAKE <name>", description "Fake metadata for
// <name:port> (<category>).", relevance "high" for fake-malicious and "low" otherwise, tags the category
// and "port-<port>".
func Destination(nameAndPort string) DestinationInfo {
	name, port := splitDest(nameAndPort)
	cat := Category(nameAndPort)
	rel := "low"
	if cat == CategoryMalicious {
		rel = "high"
	}
	return DestinationInfo{Name: nameAndPort, Title: "FAKE " + name,
		Description: fmt.Sprintf("Fake metadata for %s (%s).", nameAndPort, cat), Relevance: rel,
		Tags: []string{cat, "port-" + strconv.Itoa(port)}}
}

// Behavior is the behaviour document of any flow id: {"flowId", "name": "fake-behavior",
// "description"}.
func Behavior(flowID string) map[string]any {
	return map[string]any{"flowId": flowID, "name": "fake-behavior",
		"description": "FAKE: the fake analyses nothing; every flow gets this behaviour."}
}

// Event is the event document of an id EventID gives: {"eventId", "name": "fake-malicious-destination",
// "severity": "high", "description"}. ok is false for any other id (404).
func Event(eventID string) (doc map[string]any, ok bool) {
	if !strings.HasPrefix(eventID, "fake-event-") || len(eventID) > 64 {
		return nil, false
	}
	return map[string]any{"eventId": eventID, "name": "fake-malicious-destination", "severity": "high",
		"description": "FAKE: a flow went to a name ending in " + MaliciousSuffix + "."}, true
}

// Verdict is a sample's verdict from its flows' categories (one per flow): any fake-malicious flow →
// "malicious", "high"; no flows → "benign", "low"; else "benign", "medium".
func Verdict(categories []string) (verdict, confidence string) {
	if len(categories) == 0 {
		return "benign", "low"
	}
	for _, c := range categories {
		if c == CategoryMalicious {
			return "malicious", "high"
		}
	}
	return "benign", "medium"
}

// ReportText is the summary text of a report of kind "summary" or "categorization", from the sample's
// flows' categories (one per flow):
//
//	summary:        "FAKE summary: N flows, M malicious; verdict V (confidence C)."
//	categorization: "FAKE categorization: N flows: cat1 n1, cat2 n2." (categories sorted by name)
func ReportText(kind string, categories []string) string {
	counts := categoryCounts(categories)
	if kind == "categorization" {
		names := make([]string, 0, len(counts))
		for c := range counts {
			names = append(names, c)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, c := range names {
			parts[i] = fmt.Sprintf("%s %d", c, counts[c])
		}
		return fmt.Sprintf("FAKE categorization: %d flows: %s.", len(categories), strings.Join(parts, ", "))
	}
	v, conf := Verdict(categories)
	return fmt.Sprintf("FAKE summary: %d flows, %d malicious; verdict %s (confidence %s).",
		len(categories), counts[CategoryMalicious], v, conf)
}

// ReportDetails is a report's details: {"flows": N, "categories": {category: flows}}.
func ReportDetails(categories []string) map[string]any {
	return map[string]any{"flows": len(categories), "categories": categoryCounts(categories)}
}

func categoryCounts(categories []string) map[string]int {
	counts := map[string]int{}
	for _, c := range categories {
		counts[c]++
	}
	return counts
}
