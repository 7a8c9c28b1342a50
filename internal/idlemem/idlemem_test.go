package idlemem

import (
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"
)

// TestReleaseFollowsTheEndOfWork drives the releaser with a scripted
// activity count, one value per tick, and checks on which ticks it
// releases.
func TestReleaseFollowsTheEndOfWork(t *testing.T) {
	tests := []struct {
		name     string
		activity []uint64 // the first value is read before the first tick
		want     []int    // ticks (1-based) after which a release ran
		gap      int      // MinGap in ticks (0: none)
		quiet    int      // Quiet in ticks (0: one tick)
	}{
		{name: "the start counts as work", activity: []uint64{0, 0, 0, 0}, want: []int{1}},
		{name: "steady work never releases", activity: []uint64{0, 5, 9, 20, 31}, quiet: 2, want: nil},
		{name: "a burst then quiet releases once", activity: []uint64{0, 10, 20, 20, 20, 20}, quiet: 2, want: []int{4}},
		{name: "work counted before the start is not a burst", activity: []uint64{7, 7, 7, 7, 7}, gap: 9, want: []int{1}},
		{name: "two bursts release twice", activity: []uint64{0, 3, 3, 3, 8, 8}, want: []int{2, 5}},
		{name: "a trickle releases after each quiet tick", activity: []uint64{0, 1, 1, 2, 2}, want: []int{2, 4}},
		{name: "a trickle releases once per gap", activity: []uint64{0, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4}, gap: 4, want: []int{2, 6, 10}},
		{name: "a release due in the gap waits for it", activity: []uint64{0, 1, 1, 2, 2, 2, 2, 2}, gap: 4, want: []int{2, 6}},
		{name: "a release waits for the quiet time", activity: []uint64{0, 4, 4, 4, 4, 4}, quiet: 3, want: []int{4}},
		{name: "work within the quiet time starts it again", activity: []uint64{0, 4, 4, 5, 5, 5, 5, 5}, quiet: 3, want: []int{6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Activity is read once before the first tick and once per
			// tick, by the watching goroutine alone: reads counts ticks.
			reads := 0
			var got []int
			tick := make(chan time.Time)
			// The clock is the tick count, in seconds.
			clock := func() time.Time { return time.Unix(int64(reads), 0) }
			gap := time.Duration(tt.gap) * time.Second
			if gap == 0 {
				gap = time.Nanosecond
			}
			if tt.quiet == 0 {
				tt.quiet = 1
			}
			r := &Releaser{
				MinGap: gap,
				Quiet:  time.Duration(tt.quiet) * time.Second,
				Activity: func() uint64 {
					v := tt.activity[min(reads, len(tt.activity)-1)]
					reads++
					return v
				},
				release: func() { got = append(got, reads-1) },
			}
			quit := make(chan struct{})
			done := make(chan struct{})
			go func() { defer close(done); r.watch(quit, tick, clock) }()
			for n := 1; n < len(tt.activity); n++ {
				tick <- time.Time{}
			}
			close(quit)
			<-done
			if len(got) != len(tt.want) {
				t.Fatalf("released after ticks %v, want %v", got, tt.want)
			}
			for k := range got {
				if got[k] != tt.want[k] {
					t.Fatalf("released after ticks %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// TestReleaseReturnsFreedHeap checks the real release: heap freed by a
// burst is back with the OS afterwards.
func TestReleaseReturnsFreedHeap(t *testing.T) {
	burst := make([][]byte, 64)
	for i := range burst {
		burst[i] = make([]byte, 1<<20)
		burst[i][0] = 1
	}
	runtime.KeepAlive(burst)
	burst = nil
	before := heapReleased()
	(&Releaser{}).releaseNow()
	if got := heapReleased() - min(before, heapReleased()); got < 32<<20 {
		t.Fatalf("released %d bytes after freeing 64 MiB, want at least 32 MiB", got)
	}
}

// TestReleaseFreesPooledBuffers models how nats-server's file store holds a
// block's cache: through a weak pointer, with a cleanup that parks the
// cache's buffer in a sync.Pool once a collection took the cache. One
// release frees the buffer, though that takes three collections (the
// cache, the pool, the pool's victim cache) and a cleanup in between.
func TestReleaseFreesPooledBuffers(t *testing.T) {
	type cache struct{ buf []byte }
	var pool sync.Pool
	buf := make([]byte, 32<<20)
	buf[0] = 1
	c := &cache{buf: buf}
	runtime.AddCleanup(c, func(b []byte) { pool.Put(&b) }, buf)
	held := weak.Make(c)
	c, buf = nil, nil
	(&Releaser{}).releaseNow()
	if held.Value() != nil {
		t.Fatal("the weakly held cache survived the release")
	}
	if live := heapLive(); live >= 32<<20 {
		t.Fatalf("live heap %d bytes after the release: the pooled 32 MiB buffer is still held", live)
	}
	runtime.KeepAlive(&pool)
}
