package delivery

import (
	"context"
	"time"

	"github.com/hookgate/hookgate/engine"
)

// Time windows over the delivery log, for the console: a listing bounded by
// the time of each delivery's last change, and per-minute attempt counts.
// Both read the log from a start time (JetStream finds it without reading
// what comes before), and at most maxScan entries.

// DeliveriesIn is Deliveries for the deliveries whose last change is at or
// after since and not after until (a zero bound is open). The log is read
// from since by time, so an old delivery costs nothing; a delivery written
// just before since may still be listed (the log's time is when an entry
// was stored, a little after the delivery's own time). With an event, the
// event's deliveries are filtered by the window. A page reads at most
// maxScan log entries, like Deliveries.
func (p *Pipeline) DeliveriesIn(ctx context.Context, q Query, since, until time.Time) ([]*Record, string, error) {
	if since.IsZero() && until.IsZero() {
		return p.Deliveries(ctx, q)
	}
	if q.Event != "" {
		recs, next, err := p.Deliveries(ctx, q)
		if err != nil {
			return nil, "", err
		}
		out := recs[:0]
		for _, r := range recs {
			if !until.IsZero() && r.UpdatedAt.After(until) {
				continue
			}
			if !since.IsZero() && r.UpdatedAt.Before(since) {
				continue
			}
			out = append(out, r)
		}
		return out, next, nil
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	return p.listLog(ctx, q, since, until)
}

// MaxActivityMinutes bounds the window of Activity.
const MaxActivityMinutes = 60

// Activity counts delivery attempts and failed attempts per minute.
type Activity struct {
	// From is the start of the first minute.
	From time.Time `json:"from"`
	// Minutes is the number of minutes counted (the length of each series).
	Minutes int `json:"minutes"`
	// Destinations holds a series per subscription id (or, for a workflow
	// target, destination id) that had an attempt in the window.
	Destinations map[string]*ActivitySeries `json:"destinations"`
	// Total sums every destination.
	Total *ActivitySeries `json:"total"`
	// Truncated is set when the window held more than maxScan log entries:
	// the counts cover the first maxScan.
	Truncated bool `json:"truncated,omitempty"`
}

// ActivitySeries is one destination's counts, one per minute, oldest first.
type ActivitySeries struct {
	Attempts []int `json:"attempts"`
	Failures []int `json:"failures"`
}

func newSeries(n int) *ActivitySeries {
	return &ActivitySeries{Attempts: make([]int, n), Failures: make([]int, n)}
}

// Activity counts the attempts of the last minutes (1 to
// MaxActivityMinutes) before now, per destination and in total; an attempt
// failed when it had an error or a status outside 2xx. It reads the log
// from the window's start, at most maxScan entries.
func (p *Pipeline) Activity(ctx context.Context, now time.Time, minutes int) (*Activity, error) {
	minutes = max(1, min(minutes, MaxActivityMinutes))
	from := now.Truncate(time.Minute).Add(-time.Duration(minutes-1) * time.Minute)
	a := &Activity{From: from, Minutes: minutes, Destinations: map[string]*ActivitySeries{}, Total: newSeries(minutes)}
	read := 0
	_, err := p.scanFrom(ctx, []string{engine.SubjectRecords + ".*.*"}, logPos{}, from, maxScan, func(_ logPos, e *logEntry) bool {
		read++
		if e.Attempt == nil {
			return true
		}
		i := int(e.Attempt.At.Sub(from) / time.Minute)
		if i < 0 || i >= minutes {
			return true
		}
		key := e.SubscriptionID
		if key == "" {
			key = e.Destination
		}
		s := a.Destinations[key]
		if s == nil {
			s = newSeries(minutes)
			a.Destinations[key] = s
		}
		failed := e.Attempt.Error != "" || e.Attempt.StatusCode < 200 || e.Attempt.StatusCode > 299
		s.Attempts[i]++
		a.Total.Attempts[i]++
		if failed {
			s.Failures[i]++
			a.Total.Failures[i]++
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	a.Truncated = read >= maxScan
	return a, nil
}
