// Package idlemem returns to the operating system the memory a burst of
// work left behind, once the process goes idle.
//
// After a burst of webhooks the process holds memory it no longer uses: Go
// heap freed by the last collections but not yet scavenged, and the 8 MB
// block buffers nats-server's file store parks in a sync.Pool (a pooled
// buffer survives one collection in the pool's victim cache). The Go
// runtime gives these back on its own only slowly: its scavenger paces
// itself, and an idle process collects once every two minutes. A Releaser
// watches a count of work done and, at the first quiet interval after some
// work, collects twice (the second collection frees what the first moved
// to the pools' victim caches) and returns the free heap to the OS.
//
// Its cost is bounded: at most one release per interval (default 5 s), and
// only after an interval with work in it followed by one without; under
// steady load it never runs.
package idlemem

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// DefaultInterval is the default Releaser.Interval.
const DefaultInterval = 5 * time.Second

// Releaser releases memory when the work it watches stops.
type Releaser struct {
	// Activity returns a count that grows with the work done (events
	// accepted, delivery attempts made); it must be cheap and safe for
	// concurrent use.
	Activity func() uint64
	// Interval is how often Activity is read. Default: DefaultInterval.
	Interval time.Duration
	// Log receives one Debug line per release; nil logs nothing.
	Log *zap.Logger

	// release is the release itself (replaced in tests).
	release func()
}

// Run reads Activity every Interval until quit is closed and releases
// memory at the first interval without new work after one with some.
func (r *Releaser) Run(quit <-chan struct{}) {
	every := r.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	r.watch(quit, t.C)
}

// watch is Run's loop over the ticks of tick.
func (r *Releaser) watch(quit <-chan struct{}, tick <-chan time.Time) {
	release := r.release
	if release == nil {
		release = r.releaseNow
	}
	last := r.Activity()
	worked := false // work was seen since the last release
	for {
		select {
		case <-quit:
			return
		case <-tick:
		}
		now := r.Activity()
		switch {
		case now != last:
			worked = true
		case worked:
			release()
			worked = false
		}
		last = now
	}
}

// releaseNow collects twice and returns the free heap to the OS.
func (r *Releaser) releaseNow() {
	start := time.Now()
	before := heapReleased()
	runtime.GC()
	debug.FreeOSMemory() // collects again, then returns free memory
	if r.Log != nil {
		r.Log.Debug("idle: returned free memory to the OS",
			zap.Uint64("returned_bytes", heapReleased()-min(before, heapReleased())),
			zap.Duration("took", time.Since(start)))
	}
}

// heapReleased is the heap memory the runtime has returned to the OS.
func heapReleased() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
