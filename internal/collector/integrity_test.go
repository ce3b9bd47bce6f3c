package collector

import (
	"context"
	"database/sql"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flowfleetv1 "github.com/flowfleet/flowfleet/gen/flowfleet/v1"
	"github.com/flowfleet/flowfleet/internal/auth"
	"github.com/flowfleet/flowfleet/internal/pki"
	"github.com/flowfleet/flowfleet/internal/store"
)

// readContent downloads a sample's content over gRPC.
func readContent(ctx context.Context, conn flowfleetv1.SampleServiceClient, id string) ([]byte, error) {
	stream, err := conn.GetSampleContent(ctx, &flowfleetv1.GetSampleContentRequest{Id: id})
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetChunk()...)
	}
}

// A sample whose content was changed in the database after it was written is refused with DATA_LOSS
// (and counted), never served as OK; an intact sample is served. (Issue #14 item 9: after random
// overwrites of the SQLite file GetSampleContent returned other bytes than the .bf, with status OK.)
func TestDamagedContentIsDataLoss(t *testing.T) {
	p := newTestPKI(t)
	g := startCollectorWith(t, p, Config{Window: 60 * time.Second, Grace: time.Hour}, collectorOptions{})
	sensor, err := openSensor(t, dialAs(t, g.addr, p.Issue(t, auth.RoleSensor, "web01", pki.IssueOptions{})), "s1", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws := time.Now().Unix()/60*60 - 120
	for i, w := range []int64{ws, ws + 60} {
		sensor.send(uint64(i+1), testFlows(w, 4, 0))
		sensor.ack()
		sensor.endWindow(w, 60, float64(w)+0.5)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var samples []store.Sample
	waitFor(t, "two samples", func() bool {
		samples, _, _ = g.st.ListSamples(ctx, store.SampleFilter{})
		return len(samples) == 2
	})
	damaged, intact := samples[0].ID, samples[1].ID
	want, err := g.st.SampleContent(ctx, damaged)
	if err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(g.c.cfg.DataDir, "flowfleet.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := append([]byte(nil), want...)
	bad[len(bad)/2] ^= 0x01 // one bit, as a bad sector or a stray write would
	if _, err := db.ExecContext(ctx, "UPDATE sample_data SET content = ? WHERE id = ?", bad, damaged); err != nil {
		t.Fatal(err)
	}

	reader := flowfleetv1.NewSampleServiceClient(dialAs(t, g.addr, p.Issue(t, auth.RoleReader, "alice", pki.IssueOptions{})))
	got, err := readContent(ctx, reader, damaged)
	if status.Code(err) != codes.DataLoss || len(got) != 0 {
		t.Fatalf("damaged sample: %d bytes, %v; want DATA_LOSS and no bytes", len(got), err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "damaged") || !strings.Contains(msg, damaged) {
		t.Fatalf("DATA_LOSS message %q does not say which sample is damaged", msg)
	}
	if v := metricValue(t, g.c.metrics.corruptContent); v != 1 {
		t.Fatalf("sample_content_corrupt_total = %v, want 1", v)
	}
	if got, err := readContent(ctx, reader, intact); err != nil || len(got) == 0 {
		t.Fatalf("intact sample: %d bytes, %v", len(got), err)
	}
}
