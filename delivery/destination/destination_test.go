package destination

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	bases := []time.Duration{
		5 * time.Second, 25 * time.Second, 125 * time.Second, 625 * time.Second, 3125 * time.Second,
		time.Hour, time.Hour, time.Hour, time.Hour,
	}
	for i, base := range bases {
		n := i + 1
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		var minSeen, maxSeen time.Duration
		distinct := map[time.Duration]bool{}
		for j := range 200 {
			d := Backoff(n)
			if d < lo || d > hi {
				t.Fatalf("Backoff(%d) = %v, outside [%v, %v]", n, d, lo, hi)
			}
			if j == 0 || d < minSeen {
				minSeen = d
			}
			if d > maxSeen {
				maxSeen = d
			}
			distinct[d] = true
		}
		// Jitter: the values spread over the ±20% band.
		if len(distinct) < 150 || minSeen > time.Duration(float64(base)*0.9) || maxSeen < time.Duration(float64(base)*1.1) {
			t.Errorf("Backoff(%d): %d distinct values in [%v, %v]; want jitter over [%v, %v]", n, len(distinct), minSeen, maxSeen, lo, hi)
		}
	}
	// Huge attempt numbers stay capped (no overflow).
	for _, n := range []int{50, 1000, 1 << 30} {
		if d := Backoff(n); d < 48*time.Minute || d > 72*time.Minute {
			t.Errorf("Backoff(%d) = %v, want ~1h", n, d)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	d := &Destination{Schedule: []time.Duration{time.Second, 10 * time.Second, time.Minute}}
	for n, want := range map[int]time.Duration{
		1: time.Second, 2: 10 * time.Second, 3: time.Minute, 4: time.Minute, 10: time.Minute,
	} {
		if got := d.RetryDelay(n); got != want {
			t.Errorf("RetryDelay(%d) = %v, want %v", n, got, want)
		}
	}
	single := &Destination{Schedule: []time.Duration{3 * time.Second}}
	for n := 1; n < 5; n++ {
		if got := single.RetryDelay(n); got != 3*time.Second {
			t.Errorf("single RetryDelay(%d) = %v", n, got)
		}
	}
	// No schedule: the default backoff.
	def := &Destination{}
	if got := def.RetryDelay(2); got < 20*time.Second || got > 30*time.Second {
		t.Errorf("default RetryDelay(2) = %v, want 25s ±20%%", got)
	}
}
