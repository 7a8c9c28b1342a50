package delivery

import (
	"fmt"
	"testing"
	"time"
)

// writeEntries appends succeeded log entries for events first..first+n-1
// of destination dest, as the records writer would.
func writeEntries(t *testing.T, e *env, dest string, first, n int) {
	t.Helper()
	var batch []*pendingEntry
	for i := first; i < first+n; i++ {
		ev := fmt.Sprintf("evt_%07d", i)
		batch = append(batch, &pendingEntry{
			e: &logEntry{
				Delivery: recordID(dest, ev), EventID: ev, EventSeq: uint64(i), Destination: dest,
				SubscriptionID: dest, Status: StatusSucceeded, At: time.Now().UTC(),
				Attempt: &Attempt{At: time.Now().UTC(), StatusCode: 200},
			},
			done: make(chan error, 1),
		})
	}
	e.pipe.writeBatch(e.ctx, batch)
	for _, pe := range batch {
		if err := <-pe.done; err != nil {
			t.Fatalf("writing the log: %v", err)
		}
	}
}

// A window from since reads the log from that time: deliveries written
// before it (more than one page's scan bound of them) cost nothing, and
// the newer ones come in one page, with no cursor to follow.
func TestDeliveriesInSkipsTheLogBeforeSince(t *testing.T) {
	e := newEnv(t)
	e.pipe = e.newPipeline(Options{}) // the log needs no consumer
	old := maxScan + 1000
	writeEntries(t, e, "tail", 1, old)
	time.Sleep(20 * time.Millisecond) // the log's time is when an entry was stored
	since := time.Now().UTC()
	writeEntries(t, e, "tail", old+1, 3)

	start := time.Now()
	recs, next, err := e.pipe.DeliveriesIn(e.ctx, Query{Limit: 100}, since, time.Time{})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("DeliveriesIn: %v", err)
	}
	if next != "" {
		t.Errorf("next cursor %q: the scan did not start at since", next)
	}
	if len(recs) != 3 {
		t.Fatalf("%d deliveries since %v, want the 3 written after it", len(recs), since)
	}
	for i, r := range recs {
		if want := recordID("tail", fmt.Sprintf("evt_%07d", old+1+i)); r.ID != want {
			t.Errorf("delivery %d = %s, want %s", i, r.ID, want)
		}
	}
	t.Logf("%d entries before since; the window since took %v", old, took)

	// The same query without since reads from the start of the log: the
	// scan bound ends its first page before the new deliveries.
	recs, next, err = e.pipe.Deliveries(e.ctx, Query{Limit: 100})
	if err != nil || len(recs) == 0 || next == "" {
		t.Fatalf("Deliveries from the start: %d records, next %q, %v", len(recs), next, err)
	}
	if recs[0].ID != recordID("tail", "evt_0000001") {
		t.Errorf("first delivery of the log = %s", recs[0].ID)
	}
}
