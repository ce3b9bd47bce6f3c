package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
	"github.com/flowfleet/flowfleet/internal/store/storetest"
)

// BenchmarkSaveBatches commits groups of batches (each one part of 500 flows, ~50 KB encoded) from
// distinct hosts, as the collector's group commit does, and reports flows per second.
func BenchmarkSaveBatches(b *testing.B) {
	backends := map[string]func(b *testing.B) string{
		"sqlite": func(b *testing.B) string { return filepath.Join(b.TempDir(), "flowfleet.db") },
	}
	if os.Getenv(storetest.PostgresEnv) != "" {
		backends["postgres"] = func(b *testing.B) string { return storetest.PostgresDSN(b) }
	}
	for name, newDSN := range backends {
		for _, group := range []int{1, 16, 128, 512} {
			b.Run(fmt.Sprintf("%s/group_%d", name, group), func(b *testing.B) {
				ctx := context.Background()
				st, err := store.Open(ctx, newDSN(b))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				payload := make([]byte, 50_000)
				for i := range payload {
					payload[i] = byte(i * 7)
				}
				const flowsPerBatch = 500
				seq := map[int]uint64{}
				ws := time.Now().Unix() / 300 * 300
				b.SetBytes(int64(group * len(payload)))
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					batches := make([]store.Batch, group)
					for j := range batches {
						h := (i*group + j) % 1000
						seq[h]++
						batches[j] = store.Batch{Host: fmt.Sprintf("h%04d", h), StreamID: "s", Seq: seq[h], Received: time.Now(),
							Parts: []store.BatchPart{{WindowStart: ws, WindowSeconds: 300, FlowCount: flowsPerBatch, Flows: payload}}}
					}
					if _, err := st.SaveBatches(ctx, batches); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*group*flowsPerBatch)/b.Elapsed().Seconds(), "flows/s")
			})
		}
	}
}
