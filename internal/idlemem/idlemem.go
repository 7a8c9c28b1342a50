// Package idlemem returns to the operating system the memory a burst of
// work left behind, once the process goes idle.
//
// After a burst of webhooks the process holds memory it no longer uses: Go
// heap freed by the last collections but not yet scavenged, and the 8 MB
// block buffers of nats-server's file store (a block's cache is held for
// 10 s after its last use, then parked in a sync.Pool, where it survives
// one more collection in the pool's victim cache). The Go runtime gives
// these back on its own only slowly: its scavenger paces itself, and an
// idle process collects once every two minutes. A Releaser watches a count
// of work done and, once it has stayed the same for Quiet after some work,
// collects until a collection frees little more (pooled buffers need up to
// three) and returns the free heap to the OS.
//
// Its cost is bounded: a release follows work and then a quiet time
// (default 15 s), and at most one runs per MinGap (default a minute); under
// steady load none runs.
package idlemem

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// Defaults of a Releaser.
const (
	DefaultInterval = 5 * time.Second
	DefaultQuiet    = 15 * time.Second
	DefaultMinGap   = time.Minute
)

// Releaser releases memory when the work it watches stops.
type Releaser struct {
	// Activity returns a count that grows with the work done (events
	// accepted, delivery attempts made); it must be cheap and safe for
	// concurrent use.
	Activity func() uint64
	// Interval is how often Activity is read. Default: DefaultInterval.
	Interval time.Duration
	// Quiet is how long the work count must stay the same before a
	// release: longer than nats-server keeps a block's cache after its
	// last use (10 s), so that the caches of the burst are gone by then.
	// Default: DefaultQuiet.
	Quiet time.Duration
	// MinGap is the least time between two releases: a release due sooner
	// waits for it, so that a trickle of work costs at most one release
	// per MinGap. Default: DefaultMinGap.
	MinGap time.Duration
	// Log receives one Debug line per release; nil logs nothing.
	Log *zap.Logger

	// release is the release itself (replaced in tests).
	release func()
}

// Run reads Activity every Interval until quit is closed and releases
// memory once it has not changed for Quiet after it did (or since the
// start).
func (r *Releaser) Run(quit <-chan struct{}) {
	every := r.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	r.watch(quit, t.C, time.Now)
}

// watch is Run's loop over the ticks of tick.
func (r *Releaser) watch(quit <-chan struct{}, tick <-chan time.Time, clock func() time.Time) {
	release := r.release
	if release == nil {
		release = r.releaseNow
	}
	gap, quiet := r.MinGap, r.Quiet
	if gap <= 0 {
		gap = DefaultMinGap
	}
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	// Starting is work too: a process that just recovered its store holds
	// the garbage of it, so the first quiet time after the start releases.
	last := r.Activity()
	worked, changed := true, clock()
	var released time.Time
	for {
		select {
		case <-quit:
			return
		case <-tick:
		}
		now, at := r.Activity(), clock()
		switch {
		case now != last:
			worked, changed = true, at
		case worked && at.Sub(changed) >= quiet && (released.IsZero() || at.Sub(released) >= gap):
			release()
			worked, released = false, at
		}
		last = now
	}
}

// releaseNow collects until a collection frees little more (at most
// maxCollections), then returns the free heap to the OS. One collection is
// not enough for pooled buffers: nats-server's file store holds the cache
// of a block through a weak pointer whose cleanup puts the buffer back in a
// sync.Pool after the collection that took the cache; the next collection
// moves it to the pool's victim cache, and only the one after that frees
// it. The short pause after each collection lets such cleanups run.
func (r *Releaser) releaseNow() {
	start := time.Now()
	before := heapReleased()
	prev, collections := uint64(0), 0
	for collections < maxCollections {
		runtime.GC()
		collections++
		time.Sleep(cleanupPause)
		live := heapLive()
		if collections > 1 && prev < live+enoughFreed {
			break
		}
		prev = live
	}
	debug.FreeOSMemory() // one more collection, then free memory back to the OS
	if r.Log != nil {
		r.Log.Debug("idle: returned free memory to the OS",
			zap.Uint64("returned_bytes", heapReleased()-min(before, heapReleased())),
			zap.Uint64("live_heap_bytes", heapLive()),
			zap.Int("collections", collections+1),
			zap.Duration("took", time.Since(start)))
	}
}

// Bounds of one release: at most maxCollections collections before the
// last, each followed by cleanupPause; collecting stops once one frees less
// than enoughFreed.
const (
	maxCollections = 4
	cleanupPause   = 10 * time.Millisecond
	enoughFreed    = 1 << 20
)

// heapLive is the heap the last collection found live.
func heapLive() uint64 { return readUint64("/gc/heap/live:bytes") }

// heapReleased is the heap memory the runtime has returned to the OS.
func heapReleased() uint64 { return readUint64("/memory/classes/heap/released:bytes") }

// readUint64 reads one runtime metric (0 when the runtime lacks it).
func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
