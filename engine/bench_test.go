package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublish measures a durable event write (what an accepted webhook
// costs the engine) with each sync mode, from parallel publishers:
//
//	go test -run x -bench Publish ./engine/
func BenchmarkPublish(b *testing.B) {
	payload := []byte(strings.Repeat("x", 2048))
	for _, syncAlways := range []bool{false, true} {
		name := "sync=interval"
		if syncAlways {
			name = "sync=always"
		}
		b.Run(name, func(b *testing.B) {
			eng, err := Open(context.Background(), Config{StorageDir: b.TempDir(), SyncAlways: syncAlways}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			js := eng.JetStream()
			var n uint64
			var mu = make(chan struct{}, 1)
			mu <- struct{}{}
			b.SetBytes(int64(len(payload)))
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					<-mu
					n++
					id := fmt.Sprintf("evt_%d", n)
					mu <- struct{}{}
					m := nats.NewMsg(SubjectFanout)
					m.Data = payload
					if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPublishLatency measures one durable event write at a time, as
// one webhook sender sending one after the other sees it: back to back
// ("busy") and with a pause before each write ("paced", 100 writes/s, as
// the end-to-end latency target is measured), reporting the median:
//
//	go test -run x -bench PublishLatency -benchtime 300x ./engine/
func BenchmarkPublishLatency(b *testing.B) {
	payload := []byte(strings.Repeat("x", 2048))
	for _, pause := range []time.Duration{0, 10 * time.Millisecond} {
		name := "busy"
		if pause > 0 {
			name = "paced"
		}
		b.Run(name, func(b *testing.B) {
			eng, err := Open(context.Background(), Config{StorageDir: b.TempDir()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			js := eng.JetStream()
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				if pause > 0 {
					b.StopTimer()
					time.Sleep(pause)
					b.StartTimer()
				}
				m := nats.NewMsg(PartitionSubject(SubjectDirect, 0))
				m.Data = payload
				start := time.Now()
				if _, err := js.PublishMsg(context.Background(), m); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*9/10].Microseconds()), "p90-µs")
		})
	}
}
