package dataset

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkWriters measures each format's writer on 100,000 records (records/s in the output), into
// io.Discard. Figures and the command: bench/README.md, section Datasets.
func BenchmarkWriters(b *testing.B) {
	recs := make([]Record, 2048) // convert --to hands flows over 2,048 at a time
	base := sampleRecords()
	for i := range recs {
		recs[i] = base[i%len(base)]
		recs[i].DstName = fmt.Sprintf("host-%d.example.org", i%500)
	}
	const total = 100_000
	for _, f := range []Format{CSV, JSONL, Parquet} {
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w, err := NewWriter(f, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; n < total; n += len(recs) {
					if err := w.Write(recs[:min(len(recs), total-n)]...); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
