package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
	"github.com/hookgate/hookgate/registry"
)

// The delivery log is the record stream: one entry per attempt or outcome,
// never rewritten. A delivery's record is the fold of its entries. Entries
// are filed under their status and the bucket of their event (the event's
// sequence divided by bucketSize), so that the deliveries of one event are
// found among those of bucketSize events, and listing by status reads only
// that status. No subject or key is kept per event or per delivery.
const bucketShift = 6 // 64 events per bucket

func bucketOf(evSeq uint64) uint64 { return evSeq >> bucketShift }

func recordSubject(status string, evSeq uint64) string {
	return engine.SubjectRecords + "." + status + "." + strconv.FormatUint(bucketOf(evSeq), 10)
}

func bucketSubjects(evSeq uint64) []string {
	b := strconv.FormatUint(bucketOf(evSeq), 10)
	return []string{
		engine.SubjectRecords + "." + StatusPending + "." + b,
		engine.SubjectRecords + "." + StatusSucceeded + "." + b,
		engine.SubjectRecords + "." + StatusFailed + "." + b,
	}
}

// logEntry is one message of the delivery log.
type logEntry struct {
	Delivery       string     `json:"delivery"`
	EventID        string     `json:"event_id"`
	EventSeq       uint64     `json:"event_seq"`
	Destination    string     `json:"destination"`
	SubscriptionID string     `json:"subscription_id,omitempty"`
	WorkflowID     string     `json:"workflow_id,omitempty"`
	Status         string     `json:"status"`
	Attempt        *Attempt   `json:"attempt,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	Replay         int        `json:"replay,omitempty"`
	At             time.Time  `json:"at"`
}

// writeRecord appends the delivery's new state to the log and returns once
// it is stored.
func (p *Pipeline) writeRecord(ctx context.Context, d *delivery, status, reason string, at *Attempt, next *time.Time) error {
	e := logEntry{
		Delivery: d.id(), EventID: d.ev.ID, EventSeq: d.evSeq, Destination: d.destID,
		SubscriptionID: d.subID, WorkflowID: d.workflow, Status: status, Attempt: at,
		Reason: reason, NextAttemptAt: next, Replay: d.replay, At: time.Now().UTC(),
	}
	return p.appendEntry(ctx, &e)
}

// appendEntry adds e to the log and returns once it is stored. Entries are
// written in batches: what workers hand in while a batch is being written
// goes into the next one, one message per subject, so that under load the
// log costs a fraction of a write per delivery and, idle, no added wait.
func (p *Pipeline) appendEntry(ctx context.Context, e *logEntry) error {
	pe := &pendingEntry{e: e, done: make(chan error, 1)}
	p.recordsMu.RLock()
	queued := false
	if !p.recordsClosed {
		select {
		case p.records <- pe:
			queued = true
		default: // the writer is behind: write this one here
		}
	}
	p.recordsMu.RUnlock()
	if !queued {
		// Also when the pipeline is stopped (a replay asked meanwhile).
		p.writeBatch(ctx, []*pendingEntry{pe})
	}
	select {
	case err := <-pe.done:
		if err != nil && ctx.Err() == nil {
			p.log.Warn("recording a delivery failed", zap.String("delivery", e.Delivery), zap.Error(err))
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type pendingEntry struct {
	e    *logEntry
	done chan error
}

// maxBatch bounds the entries of one log write.
const maxBatch = 256

// writeRecords writes the entries handed to appendEntry, in batches, until
// the pipeline's context ends.
func (p *Pipeline) writeRecords() {
	batch := make([]*pendingEntry, 0, maxBatch)
	for {
		select {
		case pe := <-p.records:
			batch = append(batch[:0], pe)
		case <-p.ctx.Done():
			// No entry is queued from now on; those queued are written.
			p.recordsMu.Lock()
			p.recordsClosed = true
			p.recordsMu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				select {
				case pe := <-p.records:
					p.writeBatch(ctx, []*pendingEntry{pe})
				default:
					return
				}
			}
		}
	more:
		for len(batch) < maxBatch {
			select {
			case pe := <-p.records:
				batch = append(batch, pe)
			default:
				break more
			}
		}
		p.writeBatch(p.ctx, batch)
	}
}

// writeBatch stores a batch: one message per subject holding its entries.
func (p *Pipeline) writeBatch(ctx context.Context, batch []*pendingEntry) {
	groups := map[string][]*pendingEntry{}
	var order []string
	for _, pe := range batch {
		subj := recordSubject(pe.e.Status, pe.e.EventSeq)
		if groups[subj] == nil {
			order = append(order, subj)
		}
		groups[subj] = append(groups[subj], pe)
	}
	js := p.eng.JetStream()
	type sent struct {
		f       jetstream.PubAckFuture
		entries []*pendingEntry
	}
	var futures []sent
	for _, subj := range order {
		entries := groups[subj]
		list := make([]*logEntry, len(entries))
		for i, pe := range entries {
			list[i] = pe.e
		}
		m := nats.NewMsg(subj)
		m.Data = marshalEntries(list)
		f, err := js.PublishMsgAsync(m)
		if err == nil {
			futures = append(futures, sent{f, entries})
			continue
		}
		for _, pe := range entries {
			pe.done <- fmt.Errorf("recording delivery %s: %w", pe.e.Delivery, err)
		}
	}
	for _, s := range futures {
		_, err := awaitAck(ctx, s.f)
		for _, pe := range s.entries {
			if err != nil {
				pe.done <- fmt.Errorf("recording delivery %s: %w", pe.e.Delivery, err)
			} else {
				pe.done <- nil
			}
		}
	}
}

// folded is a delivery's record with the sequence of its last log entry.
type folded struct {
	rec     *Record
	lastSeq uint64
}

// fold applies entry e (at log sequence seq) to the records of a bucket.
func fold(recs map[string]*folded, e *logEntry, seq uint64) {
	f := recs[e.Delivery]
	if f == nil {
		f = &folded{rec: &Record{
			ID: e.Delivery, EventID: e.EventID, Destination: e.Destination, Attempts: []Attempt{},
		}}
		recs[e.Delivery] = f
	}
	r := f.rec
	if e.SubscriptionID != "" {
		r.SubscriptionID = e.SubscriptionID
	}
	if e.WorkflowID != "" {
		r.WorkflowID = e.WorkflowID
	}
	if e.Replay > r.Replays {
		r.Replays, r.ReplayBase = e.Replay, len(r.Attempts)
	}
	if e.Attempt != nil {
		r.Attempts = append(r.Attempts, *e.Attempt)
	}
	r.Status, r.Reason, r.NextAttemptAt, r.UpdatedAt = e.Status, e.Reason, e.NextAttemptAt, e.At
	f.lastSeq = seq
}

// bucket folds every delivery of the events in evSeq's bucket.
func (p *Pipeline) bucket(ctx context.Context, evSeq uint64) (map[uint64]map[string]*folded, error) {
	out := map[uint64]map[string]*folded{}
	err := p.scan(ctx, bucketSubjects(evSeq), logPos{}, 0, func(pos logPos, e *logEntry) bool {
		seq := pos.Seq
		recs := out[e.EventSeq]
		if recs == nil {
			recs = map[string]*folded{}
			out[e.EventSeq] = recs
		}
		fold(recs, e, seq)
		return true
	})
	return out, err
}

// folds caches the folded buckets one query reads.
type folds struct {
	p       *Pipeline
	buckets map[uint64]map[uint64]map[string]*folded
}

func (p *Pipeline) newFolds() *folds {
	return &folds{p: p, buckets: map[uint64]map[uint64]map[string]*folded{}}
}

// of returns the folded record of the delivery entry e belongs to.
func (c *folds) of(ctx context.Context, e *logEntry) (*folded, error) {
	b := bucketOf(e.EventSeq)
	if c.buckets[b] == nil {
		f, err := c.p.bucket(ctx, e.EventSeq)
		if err != nil {
			return nil, err
		}
		c.buckets[b] = f
	}
	return c.buckets[b][e.EventSeq][e.Delivery], nil
}

// state returns the record of the delivery of an event to a destination.
func (p *Pipeline) state(ctx context.Context, evSeq uint64, eventID, dest string) (*Record, error) {
	b, err := p.bucket(ctx, evSeq)
	if err != nil {
		return nil, err
	}
	if f := b[evSeq][recordID(dest, eventID)]; f != nil {
		return f.rec, nil
	}
	return nil, ErrNotFound
}

// scanBatch is how many log entries a scan fetches at a time.
const scanBatch = 512

// logPos is the place of an entry in the log: the message's sequence and
// the entry's index in the message's batch.
type logPos struct {
	Seq uint64
	Idx int
}

func (a logPos) after(b logPos) bool { return a.Seq > b.Seq || (a.Seq == b.Seq && a.Idx > b.Idx) }

// String is the page cursor form: "<seq>-<index>".
func (a logPos) String() string { return strconv.FormatUint(a.Seq, 10) + "-" + strconv.Itoa(a.Idx) }

func parseLogPos(s string) (logPos, bool) {
	a, b, _ := strings.Cut(s, "-")
	seq, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return logPos{}, false
	}
	idx := 0
	if b != "" {
		if idx, err = strconv.Atoi(b); err != nil || idx < 0 {
			return logPos{}, false
		}
	}
	return logPos{seq, idx}, true
}

// scan calls fn with every log entry on subjects, in log order, after
// position from, until fn returns false, the end, or limit entries (0: no
// limit).
func (p *Pipeline) scan(ctx context.Context, subjects []string, from logPos, limit int, fn func(pos logPos, e *logEntry) bool) error {
	_, err := p.scanFrom(ctx, subjects, from, time.Time{}, limit, fn)
	return err
}

// scanFrom is scan, and reports the position of the last entry it read.
func (p *Pipeline) scanFrom(ctx context.Context, subjects []string, from logPos, since time.Time, limit int, fn func(pos logPos, e *logEntry) bool) (last logPos, err error) {
	cfg := jetstream.ConsumerConfig{
		FilterSubjects:    subjects,
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	}
	switch {
	case from.Seq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.Seq
	case !since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	js := p.eng.JetStream()
	cons, err := js.CreateConsumer(ctx, engine.StreamRecords, cfg)
	if err != nil {
		return logPos{}, fmt.Errorf("reading the delivery log: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = js.DeleteConsumer(dctx, engine.StreamRecords, cons.CachedInfo().Name)
		cancel()
	}()
	pending := cons.CachedInfo().NumPending
	read := 0
	for pending > 0 {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := cons.Fetch(min(scanBatch, int(pending)), jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return last, fmt.Errorf("reading the delivery log: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			pending = meta.NumPending
			var entries []*logEntry
			if json.Unmarshal(m.Data(), &entries) != nil {
				continue
			}
			for i, e := range entries {
				pos := logPos{meta.Sequence.Stream, i}
				if !pos.after(from) {
					continue
				}
				last = pos
				read++
				if !fn(pos, e) || (limit > 0 && read >= limit) {
					cancel()
					return last, nil
				}
			}
		}
		cancel()
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return last, fmt.Errorf("reading the delivery log: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return last, nil
}

// Record returns a delivery record by id ("<destination>.<event id>").
func (p *Pipeline) Record(ctx context.Context, id string) (*Record, error) {
	dest, eventID, ok := strings.Cut(id, ".")
	if !ok || dest == "" {
		return nil, ErrNotFound
	}
	_, evSeq, err := p.eventAt(ctx, eventID)
	if err != nil {
		return nil, err
	}
	return p.state(ctx, evSeq, eventID, dest)
}

// Event reads an accepted event back by id.
func (p *Pipeline) Event(ctx context.Context, id string) (*Event, error) {
	ev, _, err := p.eventAt(ctx, id)
	return ev, err
}

// eventAt finds an event and its sequence: from the id itself for ids made
// by EventRef, through the id index for ids chosen by publishers.
func (p *Pipeline) eventAt(ctx context.Context, id string) (*Event, uint64, error) {
	if !registry.ValidID(id) {
		return nil, 0, ErrNotFound
	}
	var seq uint64
	if epoch, s, ok := ParseEventRef(id); ok && epoch == p.eng.EventEpoch {
		seq = s
	} else {
		e, err := p.eng.EventIDs.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, ErrNotFound
		}
		if err != nil {
			return nil, 0, err
		}
		if seq, err = strconv.ParseUint(string(e.Value()), 10, 64); err != nil {
			return nil, 0, ErrNotFound
		}
	}
	raw, err := p.eng.EventStream.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, err
	}
	ev, err := p.eventOf(raw.Header, raw.Data, seq)
	if err != nil {
		return nil, 0, err
	}
	if h := raw.Header.Get(hdrID); h != "" && h != id && !strings.HasPrefix(id, "evt_") {
		return nil, 0, ErrNotFound // the index is stale: the id names another event
	}
	return ev, seq, nil
}

// Query selects delivery records.
type Query struct {
	Subscription string
	Workflow     string
	Event        string
	Status       string
	// Limit caps the page. Default: 100, at most 1000.
	Limit int
	// After is the cursor returned with the previous page.
	After string
}

// keeps reports whether r matches the query's status, subscription and
// workflow (the event is matched by where the records are read).
func (q Query) keeps(r *Record) bool {
	return (q.Status == "" || r.Status == q.Status) &&
		(q.Subscription == "" || r.SubscriptionID == q.Subscription || r.Destination == q.Subscription) &&
		(q.Workflow == "" || r.WorkflowID == q.Workflow)
}

// maxScan bounds the log entries one query reads: a page that needs more
// (a rare subscription among busy ones) ends early with a cursor to go on.
const maxScan = 20000

// Deliveries lists the records matching q and the cursor of the next page
// ("" when none). With an event, the event's deliveries ordered by id; else
// deliveries in the order of their last change, oldest first. A page costs
// at most maxScan log entries (and the buckets of what it returns), however
// many records are kept.
func (p *Pipeline) Deliveries(ctx context.Context, q Query) ([]*Record, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	if q.Event != "" {
		_, evSeq, err := p.eventAt(ctx, q.Event)
		if errors.Is(err, ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		b, err := p.bucket(ctx, evSeq)
		if err != nil {
			return nil, "", err
		}
		var out []*Record
		for _, f := range b[evSeq] {
			if q.keeps(f.rec) && (q.After == "" || f.rec.ID > q.After) {
				out = append(out, f.rec)
			}
		}
		slices.SortFunc(out, func(a, b *Record) int { return strings.Compare(a.ID, b.ID) })
		if len(out) > q.Limit {
			return out[:q.Limit], out[q.Limit-1].ID, nil
		}
		return out, "", nil
	}

	return p.listLog(ctx, q, time.Time{}, time.Time{})
}

// listLog lists the deliveries of q (but its event) from the delivery log,
// each at the entry that is its latest change, a page of q.Limit at most,
// reading at most maxScan entries from the cursor q.After. since (when set)
// is where the log is read from by time; until (when set) ends the page at
// the first later entry, and a delivery whose latest change is after it is
// left out.
func (p *Pipeline) listLog(ctx context.Context, q Query, since, until time.Time) ([]*Record, string, error) {
	var after logPos
	if q.After != "" {
		pos, ok := parseLogPos(q.After)
		if !ok {
			return nil, "", fmt.Errorf("%w: cursor %q", ErrBadCursor, q.After)
		}
		after = pos
	}
	subjects := []string{engine.SubjectRecords + ".*.*"}
	if q.Status != "" {
		subjects = []string{engine.SubjectRecords + "." + q.Status + ".*"}
	}
	latest := p.newFolds()
	var out []*Record
	listed := map[string]bool{}
	var lastEmitted logPos
	var failed error
	more, ended := false, false
	last, err := p.scanFrom(ctx, subjects, after, since, maxScan, func(pos logPos, e *logEntry) bool {
		if !until.IsZero() && e.At.After(until) {
			ended = true
			return false
		}
		if len(out) == q.Limit {
			more = true
			return false
		}
		if (q.Subscription != "" && e.SubscriptionID != q.Subscription && e.Destination != q.Subscription) ||
			(q.Workflow != "" && e.WorkflowID != q.Workflow) {
			return true
		}
		f, err := latest.of(ctx, e)
		if err != nil {
			failed = err
			return false
		}
		// Listed at the entry that is the delivery's latest only (a later
		// change, after until, leaves it out).
		if f != nil && f.lastSeq == pos.Seq && q.keeps(f.rec) && !listed[e.Delivery] {
			listed[e.Delivery] = true
			out = append(out, f.rec)
			lastEmitted = pos
		}
		return true
	})
	if failed != nil {
		return nil, "", failed
	}
	if err != nil {
		return nil, "", err
	}
	switch {
	case more:
		return out, lastEmitted.String(), nil
	case !ended && last.after(after) && p.hasMore(ctx, subjects, last):
		// The scan bound ended the page early: go on from where it stopped.
		return out, last.String(), nil
	}
	return out, "", nil
}

// hasMore reports whether the log has entries on subjects after pos.
func (p *Pipeline) hasMore(ctx context.Context, subjects []string, pos logPos) bool {
	found := false
	_ = p.scan(ctx, subjects, pos, 1, func(logPos, *logEntry) bool { found = true; return false })
	return found
}

// ErrBadCursor is returned for a page cursor this version did not make.
var ErrBadCursor = errors.New("invalid page cursor")

// ErrNotReplayable is returned when a delivery is still pending.
var ErrNotReplayable = errors.New("delivery is still pending")

// Retry queues a finished delivery again (a manual replay); its attempt
// budget starts afresh.
func (p *Pipeline) Retry(ctx context.Context, id string) (*Record, error) {
	rec, err := p.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusPending {
		return nil, ErrNotReplayable
	}
	ev, evSeq, err := p.eventAt(ctx, rec.EventID)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", rec.EventID, err)
	}
	return p.replay(ctx, rec, ev, evSeq)
}

// replay queues a finished delivery again with a fresh attempt budget.
func (p *Pipeline) replay(ctx context.Context, rec *Record, ev *Event, evSeq uint64) (*Record, error) {
	id := rec.ID
	if _, ok := p.reg.Destination(rec.Destination); !ok {
		return nil, fmt.Errorf("destination %s: %w", rec.Destination, ErrNotFound)
	}
	replay := rec.Replays + 1
	if err := p.appendEntry(ctx, &logEntry{
		Delivery: rec.ID, EventID: rec.EventID, EventSeq: evSeq, Destination: rec.Destination,
		SubscriptionID: rec.SubscriptionID, WorkflowID: rec.WorkflowID, Status: StatusPending,
		Replay: replay, At: time.Now().UTC(),
	}); err != nil {
		return nil, err
	}
	dm := ev.message(engine.PartitionSubject(engine.SubjectQueue, Partition(rec.Destination)))
	dm.Header.Set(hdrID, ev.ID)
	dm.Header.Set(hdrDest, rec.Destination)
	dm.Header.Set(hdrEventSeq, strconv.FormatUint(evSeq, 10))
	dm.Header.Set(hdrReplay, strconv.Itoa(replay))
	if _, err := p.eng.JetStream().PublishMsg(ctx, dm, jetstream.WithMsgID(fmt.Sprintf("%s.r%d", id, replay))); err != nil {
		return nil, fmt.Errorf("queueing retry: %w", err)
	}
	rec.Replays, rec.ReplayBase = replay, len(rec.Attempts)
	rec.Status, rec.Reason, rec.NextAttemptAt = StatusPending, "", nil
	return rec, nil
}
