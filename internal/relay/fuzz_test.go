package relay_test

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/flowfleet/flowfleet/internal/relay"
)

// The fuzzers feed each decoder of a NetworkSage reply body arbitrary bytes (the service is outside the
// fleet's trust): none may panic, and whatever one accepts must respect the bounds the package
// documents. Seeds are in testdata/fuzz/<FuzzName>/. Run one with, e.g.,
//
//	go test ./internal/relay -run '^$' -fuzz '^FuzzDecodeAggregated$' -fuzztime 2m

func checkText(t *testing.T, what, s string, max int) {
	t.Helper()
	if len(s) > max {
		t.Fatalf("%s of %d bytes, more than %d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not UTF-8: %q", what, s)
	}
}

func checkDoc(t *testing.T, what string, d json.RawMessage) {
	t.Helper()
	if d != nil && (len(d) > relay.MaxDocument || !json.Valid(d) || string(d) == "null") {
		t.Fatalf("%s: %d bytes, valid %v", what, len(d), json.Valid(d))
	}
}

func checkSecflow(t *testing.T, f relay.Secflow) {
	t.Helper()
	for _, s := range []relay.Text{f.SourceData, f.DestinationData, f.DestinationNameSource, f.SourcePackets, f.SourceBytes,
		f.DestinationPackets, f.DestinationBytes, f.RelativeStart, f.Duration, f.FlowCategory, f.FlowID, f.EventID} {
		checkText(t, "flow field", string(s), relay.MaxText)
	}
}

func checkDestination(t *testing.T, d *relay.DestinationInfo) {
	t.Helper()
	if d == nil {
		return
	}
	checkText(t, "name", d.Name, relay.MaxText)
	for _, s := range []string{d.Title, d.Description, d.Relevance} {
		checkText(t, "destination text", s, relay.MaxProse)
	}
	if len(d.Tags) > relay.MaxTags {
		t.Fatalf("%d tags", len(d.Tags))
	}
	for _, tag := range d.Tags {
		checkText(t, "tag", tag, relay.MaxText)
		if tag == "" {
			t.Fatal("an empty tag")
		}
	}
}

func FuzzDecodeReport(f *testing.F) {
	f.Add([]byte(`{"status": "generated", "summary": "{\"verdict\": \"benign\", \"confidence\": \"medium\", \"summary\": \"s\", \"details\": {}}"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []relay.ReportKind{relay.ReportSummary, relay.ReportCategorization} {
			r, err := relay.DecodeReport(b, kind)
			if err != nil {
				if r != nil {
					t.Fatal("a report with an error")
				}
				continue
			}
			checkText(t, "status", r.Status, relay.MaxText)
			checkText(t, "verdict", r.Verdict, relay.MaxText)
			checkText(t, "confidence", r.Confidence, relay.MaxText)
			checkText(t, "summary", r.Summary, relay.MaxProse)
			checkDoc(t, "details", r.Details)
		}
	})
}

func FuzzDecodeAggregated(f *testing.F) {
	f.Add([]byte(`[{"secflow": {"flowId": "ab", "sourceBytes": 3}, "destination": {"title": "t", "tags": ["a"]}, "behavior": {}, "event": null, "flowIdCount": 4}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := relay.DecodeAggregated(b)
		if err != nil {
			if out != nil {
				t.Fatal("elements with an error")
			}
			return
		}
		for _, a := range out {
			checkSecflow(t, a.Secflow)
			checkDestination(t, a.Destination)
			checkDoc(t, "behavior", a.Behavior)
			checkDoc(t, "event", a.Event)
			if a.FlowIDCount < 0 {
				t.Fatalf("count %d", a.FlowIDCount)
			}
		}
	})
}

func FuzzDecodeSecflows(f *testing.F) {
	f.Add([]byte(`[{"sourceData": "10.0.0.5:1", "destinationData": "a.example:443", "sourceBytes": "1", "flowCategory": "c", "flowId": "ab"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := relay.DecodeSecflows(b)
		if err != nil && out != nil {
			t.Fatal("flows with an error")
		}
		if len(out) > relay.MaxListItems {
			t.Fatalf("%d flows", len(out))
		}
		for _, f := range out {
			checkSecflow(t, f)
		}
	})
}

func FuzzDecodeUploads(f *testing.F) {
	f.Add([]byte(`[{"fileName": "a.bf", "processed": "true", "fullS3FilePath": "s3://x/date=2024-01-02T03:04:05.000000/a.bf", "uuid": "ab"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := relay.DecodeUploads(b)
		if err != nil && out != nil {
			t.Fatal("uploads with an error")
		}
		for _, u := range out {
			for _, s := range []string{u.FileName, u.FullS3FilePath, u.DateCreated, u.DateProcessed, u.FileType, u.UUID} {
				if len(s) > relay.MaxText {
					t.Fatalf("upload field of %d bytes", len(s))
				}
			}
			u.UploadedAt()
		}
	})
}

func FuzzDecodeCount(f *testing.F) {
	f.Add([]byte(`12`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := relay.DecodeCount(b); err == nil && n < 0 {
			t.Fatalf("count %d", n)
		}
	})
}

func FuzzDecodeDestination(f *testing.F) {
	f.Add([]byte(`{"name": "a.example:443", "title": "t", "description": "d", "relevance": "low", "tags": "x, y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := relay.DecodeDestination(b)
		if err != nil {
			if d != nil {
				t.Fatal("a destination with an error")
			}
			return
		}
		checkDestination(t, d)
	})
}

func FuzzDecodeDocument(f *testing.F) {
	f.Add([]byte(`{"flowId": "ab", "name": "n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := relay.DecodeDocument(b)
		if err != nil && d != nil {
			t.Fatal("a document with an error")
		}
		checkDoc(t, "document", d)
	})
}
