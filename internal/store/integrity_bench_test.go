package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowfleet/flowfleet/internal/store"
)

// BenchmarkOpenSQLite opens (integrity check, migrations already applied) and closes a SQLite store
// holding about mb_N megabytes of batches: PRAGMA quick_check reads every page, so this is the cost
// the check adds to a collector's start.
func BenchmarkOpenSQLite(b *testing.B) {
	for _, mb := range []int{10, 100} {
		b.Run(fmt.Sprintf("mb_%d", mb), func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "flowfleet.db")
			st, err := store.Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			part := make([]byte, 256<<10)
			for i := range mb * 4 {
				_, _ = rand.Read(part)
				bt := store.Batch{Host: fmt.Sprintf("h%d", i), StreamID: "s", Seq: 1, Received: time.Now(),
					Parts: []store.BatchPart{{WindowStart: 60, WindowSeconds: 60, FlowCount: 1, Flows: part}}}
				if _, err := st.SaveBatches(ctx, []store.Batch{bt}); err != nil {
					b.Fatal(err)
				}
			}
			st.Close()
			for b.Loop() {
				st, err := store.Open(ctx, path)
				if err != nil {
					b.Fatal(err)
				}
				st.Close()
			}
		})
	}
}

// BenchmarkSampleContent reads a sample's content of mb_N megabytes, checksum verified.
func BenchmarkSampleContent(b *testing.B) {
	for _, mb := range []int{1, 10} {
		b.Run(fmt.Sprintf("mb_%d", mb), func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, filepath.Join(b.TempDir(), "flowfleet.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			content := make([]byte, mb<<20)
			_, _ = rand.Read(content)
			bt := store.Batch{Host: "h", StreamID: "s", Seq: 1, Received: time.Now(),
				Parts: []store.BatchPart{{WindowStart: 60, WindowSeconds: 60, FlowCount: 1, Flows: []byte("x")}}}
			if _, err := st.SaveBatches(ctx, []store.Batch{bt}); err != nil {
				b.Fatal(err)
			}
			s, err := st.CloseWindow(ctx, store.WindowRef{Host: "h", WindowStart: 60, WindowSeconds: 60},
				func(store.WindowContent) (store.NewSample, error) {
					return store.NewSample{ID: "h_60", FileName: "h_60.bf", FlowCount: 1, State: store.StateWritten,
						Content: content, Flows: []byte("x")}, nil
				})
			if err != nil || s == nil {
				b.Fatal(s, err)
			}
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if _, err := st.SampleContent(ctx, s.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
