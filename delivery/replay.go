package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookgate/hookgate/engine"
)

// MaxBulkRetry bounds the deliveries one bulk retry queues; a larger
// selection is queued a page at a time (the answer says where to go on).
const MaxBulkRetry = 10000

// BulkQuery selects finished deliveries to queue again.
type BulkQuery struct {
	// Subscription or Workflow the deliveries went to (one of them).
	Subscription string
	Workflow     string
	// Status of the deliveries: failed (default) or succeeded.
	Status string
	// Since and Until bound the time of the deliveries' last change.
	Since, Until time.Time
}

// BulkResult says what a bulk retry queued.
type BulkResult struct {
	Queued int `json:"queued"`
	// Skipped counts matching deliveries that could not be queued (their
	// event expired, or their destination is gone).
	Skipped int `json:"skipped,omitempty"`
	// NextSince is set when the selection was larger than MaxBulkRetry:
	// the time of the last delivery queued; ask again with it as since.
	NextSince *time.Time `json:"next_since,omitempty"`
}

// ErrBadBulkQuery is returned for a bulk retry without a subscription or
// workflow, or with a status that is not final.
var ErrBadBulkQuery = errors.New("invalid bulk retry")

// BulkRetry gives every matching finished delivery a fresh attempt budget
// and queues it again, in event order. It reads the delivery log from Since
// (by time, not from the start) and queues at most MaxBulkRetry.
func (p *Pipeline) BulkRetry(ctx context.Context, q BulkQuery) (*BulkResult, error) {
	if (q.Subscription == "") == (q.Workflow == "") {
		return nil, fmt.Errorf("%w: name a subscription or a workflow", ErrBadBulkQuery)
	}
	switch q.Status {
	case "":
		q.Status = StatusFailed
	case StatusFailed, StatusSucceeded:
	default:
		return nil, fmt.Errorf("%w: status must be failed or succeeded", ErrBadBulkQuery)
	}
	if !q.Until.IsZero() && q.Until.Before(q.Since) {
		return nil, fmt.Errorf("%w: until is before since", ErrBadBulkQuery)
	}
	type pick struct {
		rec   *Record
		evSeq uint64
	}
	latest := p.newFolds()
	picked := map[string]*pick{}
	var failed error
	var lastAt time.Time
	full := false
	subjects := []string{engine.SubjectRecords + "." + q.Status + ".*"}
	_, err := p.scanFrom(ctx, subjects, logPos{}, q.Since, 0, func(pos logPos, e *logEntry) bool {
		if !q.Until.IsZero() && e.At.After(q.Until) {
			return false
		}
		if (q.Subscription != "" && e.SubscriptionID != q.Subscription) || (q.Workflow != "" && e.WorkflowID != q.Workflow) {
			return true
		}
		if e.At.Before(q.Since) || picked[e.Delivery] != nil {
			return true
		}
		f, err := latest.of(ctx, e)
		if err != nil {
			failed = err
			return false
		}
		// Only deliveries whose latest state is this one: a failure replayed
		// since is not queued twice.
		if f == nil || f.lastSeq != pos.Seq || f.rec.Status != q.Status {
			return true
		}
		if len(picked) == MaxBulkRetry {
			full = true
			return false
		}
		picked[e.Delivery] = &pick{f.rec, e.EventSeq}
		lastAt = e.At
		return true
	})
	if failed != nil {
		return nil, failed
	}
	if err != nil {
		return nil, err
	}
	order := make([]*pick, 0, len(picked))
	for _, pk := range picked {
		order = append(order, pk)
	}
	slices.SortFunc(order, func(a, b *pick) int {
		if a.evSeq != b.evSeq {
			return cmp.Compare(a.evSeq, b.evSeq)
		}
		return cmp.Compare(a.rec.ID, b.rec.ID)
	})
	res := &BulkResult{}
	for _, pk := range order {
		ev, _, err := p.eventAt(ctx, pk.rec.EventID)
		if err == nil {
			_, err = p.replay(ctx, pk.rec, ev, pk.evSeq)
		}
		switch {
		case err == nil:
			res.Queued++
		case errors.Is(err, ErrNotFound):
			res.Skipped++
		default:
			return res, err
		}
	}
	if full {
		res.NextSince = &lastAt
	}
	return res, nil
}
