package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
