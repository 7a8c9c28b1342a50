package delivery

import (
	"context"
	"errors"
	"github.com/hookgate/hookgate/delivery/destination"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/engine"
)

// Ordered delivery (a destination's Flow.Ordered, with an optional
// Flow.OrderKey): the deliveries of one key are attempted one at a time, in
// the order of their events in the event stream, and a later one is never
// attempted while an earlier one is unfinished (in flight, waiting for a
// retry, or not yet fanned out), here or on another instance.
//
// The deliveries of an ordered destination always go through the fan-out
// (Publish never stores them as direct events), so every unfinished one is
// a message of the queue stream, which is a work queue: a message leaves it
// when it is acked or terminated. The gate keeps, per partition, an index of
// the unfinished deliveries of its ordered destinations (sequences and key,
// not the messages), read from the queue stream itself:
//
//   - the index is built by scanning the partition's subject of the queue
//     stream (after a start, from its first message: what a previous run
//     left unfinished is found there) and follows it by scanning what was
//     added since;
//   - a delivery of event S may go only when every delivery of an event
//     before S is in the queue stream and scanned: the fan-out's ack floor
//     is read before each scan that reaches the end of the subject
//     (complete);
//   - a delivery goes when it is the first of its key (by event sequence)
//     in the index and no delivery of its key is being attempted here;
//   - a delivery that must wait is held in memory (at most
//     PerDestination×4 messages per destination, touched so that the
//     server does not redeliver them) and started as soon as the one before
//     it ends here; beyond that bound it goes back to the stream
//     un-attempted and is checked again when it comes back: after 2s near
//     the head of its key, later the further behind it is (orderDeferDelay,
//     at most 5m);
//   - an indexed delivery finished elsewhere (another instance) is found
//     gone from the stream by a check of the heads that hold others up.
//
// Memory: the index holds at most orderWindow deliveries per partition
// (a few dozen bytes each, plus the key); the scan stops there and goes on
// as deliveries finish. A key whose head fails for days keeps its followers
// in JetStream, un-attempted and not lost; once the window is full, the
// deliveries past it (of every ordered destination of the partition) wait
// too. Deliveries of a destination that was not ordered when its event was
// stored as a direct event (before the option was turned on) are not
// ordered.
const (
	orderWindow      = 10000
	orderScanBatch   = 512
	orderRecheck     = 2 * time.Second
	orderDeferMax    = 5 * time.Minute
	orderStaleChecks = 256
	orderTimeout     = 10 * time.Second
)

// orderState is the ordering gate of a pipeline.
type orderState struct {
	once  sync.Once
	kick  chan int
	parts [engine.Partitions]orderPart
}

// orderPart is the index of one partition.
type orderPart struct {
	mu sync.Mutex
	// gen changes at every reset: a scan read before it is dropped.
	gen uint64
	// cursor is the next sequence of the queue stream to scan.
	cursor uint64
	// complete: the deliveries of every event up to this sequence of the
	// event stream were in the queue stream when it was last scanned to
	// its end.
	complete uint64
	tracked  int
	dests    map[string]*orderDest
	// busy holds the queue sequences attempted on this instance now.
	busy map[uint64]bool
	// done holds the queue sequences that finished here lately: a scan
	// may still read them before the server has handled their ack.
	done    map[uint64]time.Time
	kicked  bool
	touched time.Time
}

// orderDest is the part of a partition's index for one destination.
type orderDest struct {
	expr string
	// keys holds, per key, the unfinished deliveries by event sequence.
	keys map[string][]orderEntry
	byQ  map[uint64]string
	// busyKeys holds the keys with an attempt running here.
	busyKeys map[string]bool
	// held are deliveries waiting here for their turn, by queue sequence.
	held map[uint64]jetstream.Msg
}

type orderEntry struct{ evSeq, qseq uint64 }

func compareEntry(a, b orderEntry) int {
	if a.evSeq != b.evSeq {
		if a.evSeq < b.evSeq {
			return -1
		}
		return 1
	}
	switch {
	case a.qseq < b.qseq:
		return -1
	case a.qseq > b.qseq:
		return 1
	}
	return 0
}

func (od *orderDest) add(key string, e orderEntry) bool {
	if _, ok := od.byQ[e.qseq]; ok {
		return false
	}
	l := od.keys[key]
	i, _ := slices.BinarySearchFunc(l, e, compareEntry)
	od.keys[key] = slices.Insert(l, i, e)
	od.byQ[e.qseq] = key
	return true
}

func (od *orderDest) remove(qseq uint64) bool {
	key, ok := od.byQ[qseq]
	if !ok {
		return false
	}
	delete(od.byQ, qseq)
	l := od.keys[key]
	if i := slices.IndexFunc(l, func(e orderEntry) bool { return e.qseq == qseq }); i == 0 {
		l = l[1:]
	} else if i > 0 {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(od.keys, key)
	} else {
		od.keys[key] = l
	}
	return true
}

// destLocked returns the index of an ordered destination. One not indexed
// yet, or whose key changed, resets the partition: its deliveries already
// passed by the scan are read again.
func (op *orderPart) destLocked(d *destination.Destination) *orderDest {
	expr := d.Flow.OrderKey.String()
	od := op.dests[d.ID]
	if od != nil && od.expr == expr {
		return od
	}
	if op.cursor > 0 {
		op.resetLocked()
	}
	if od == nil {
		od = &orderDest{held: map[uint64]jetstream.Msg{}, busyKeys: map[string]bool{}}
		if op.dests == nil {
			op.dests = map[string]*orderDest{}
		}
		op.dests[d.ID] = od
	}
	od.expr = expr
	od.keys, od.byQ = map[string][]orderEntry{}, map[uint64]string{}
	return od
}

func (op *orderPart) resetLocked() {
	op.gen++
	op.cursor, op.complete, op.tracked = 0, 0, 0
	for _, od := range op.dests {
		od.keys, od.byQ = map[string][]orderEntry{}, map[uint64]string{}
	}
}

// orderedMsg is a delivery let through the gate: its end (ack or term)
// lets the next of its key go; a nak gives its key back.
type orderedMsg struct {
	jetstream.Msg
	p    *Pipeline
	part int
	dest string
	key  string
	qseq uint64
}

func (m *orderedMsg) Ack() error {
	err := m.Msg.Ack()
	m.p.orderEnded(m, true)
	return err
}

func (m *orderedMsg) DoubleAck(ctx context.Context) error {
	err := m.Msg.DoubleAck(ctx)
	m.p.orderEnded(m, err == nil)
	return err
}

func (m *orderedMsg) Term() error {
	err := m.Msg.Term()
	m.p.orderEnded(m, true)
	return err
}

func (m *orderedMsg) TermWithReason(reason string) error {
	err := m.Msg.TermWithReason(reason)
	m.p.orderEnded(m, true)
	return err
}

func (m *orderedMsg) Nak() error {
	err := m.Msg.Nak()
	m.p.orderEnded(m, false)
	return err
}

func (m *orderedMsg) NakWithDelay(delay time.Duration) error {
	err := m.Msg.NakWithDelay(delay)
	m.p.orderEnded(m, false)
	return err
}

// orderAdmit is the gate of an ordered destination's deliveries, called by
// dispatch. It returns the message to deliver (wrapped) and true when m may
// be attempted now; otherwise it has held m back.
func (p *Pipeline) orderAdmit(d *destination.Destination, m jetstream.Msg) (jetstream.Msg, bool) {
	meta, err := m.Metadata()
	if err != nil || meta.Stream != engine.StreamQueue {
		return m, true // a direct event stored before the destination was ordered
	}
	evSeq, err := strconv.ParseUint(m.Headers().Get(hdrEventSeq), 10, 64)
	if err != nil {
		return m, true // unreadable: open terminates it
	}
	p.order.once.Do(p.orderStart)
	pi := Partition(d.ID)
	op := &p.order.parts[pi]
	q := meta.Sequence.Stream
	op.mu.Lock()
	od := op.destLocked(d)
	if op.busy[q] {
		// Redelivered while its attempt runs here (a very long attempt).
		op.mu.Unlock()
		_ = m.NakWithDelay(orderRecheck)
		return nil, false
	}
	if key, ok := p.admissibleLocked(op, od, d, m, q, evSeq); ok {
		if op.busy == nil {
			op.busy = map[uint64]bool{}
		}
		op.busy[q] = true
		od.busyKeys[key] = true
		delete(od.held, q)
		op.mu.Unlock()
		return &orderedMsg{Msg: m, p: p, part: pi, dest: d.ID, key: key, qseq: q}, true
	}
	held, delay := false, orderRecheck
	heldMax := p.opts.PerDestination * waitingPerSlot
	if _, again := od.held[q]; again || len(od.held) < heldMax {
		select {
		case <-p.quit:
		default:
			od.held[q], held = m, true
		}
	}
	if !held {
		if key, ok := od.byQ[q]; ok {
			pos, _ := slices.BinarySearchFunc(od.keys[key], orderEntry{evSeq: evSeq, qseq: q}, compareEntry)
			delay = orderDeferDelay(pos, heldMax)
		} else if q >= op.cursor {
			// Past the scan (the window is full): as far behind as it
			// is from the cursor, at most.
			delay = orderDeferDelay(int(min(q-op.cursor, orderWindow)), heldMax)
		}
	}
	op.mu.Unlock()
	p.orderKick(pi)
	if !held {
		p.keepCount(m)
		_ = m.NakWithDelay(delay)
	}
	return nil, false
}

// orderDeferDelay is how long a delivery that must wait, and finds no room
// in memory, goes back to the stream: orderRecheck near the head of its
// key, longer the further it is behind (pos deliveries before it: the
// square of pos/heldMax rechecks), at most orderDeferMax. The deliveries
// behind a head that fails for long thus come back a few hundred times a
// second at most, whatever their number.
func orderDeferDelay(pos, heldMax int) time.Duration {
	r := max(1, pos/max(1, heldMax))
	if r > 1000 {
		return orderDeferMax
	}
	return min(orderRecheck*time.Duration(r*r), orderDeferMax)
}

// admissibleLocked reports whether the delivery at queue sequence q (of
// event evSeq) is the first of its key, every earlier one known, and none
// of its key being attempted here.
func (p *Pipeline) admissibleLocked(op *orderPart, od *orderDest, d *destination.Destination, m jetstream.Msg, q, evSeq uint64) (string, bool) {
	if op.cursor <= q || op.complete+1 < evSeq {
		return "", false
	}
	key, ok := od.byQ[q]
	if !ok {
		// Scanned past but not indexed (it was not found unfinished
		// then): it is, since it is delivered.
		key = p.orderKey(d, m.Headers(), m.Data(), evSeq)
		if od.add(key, orderEntry{evSeq: evSeq, qseq: q}) {
			op.tracked++
		}
	}
	if od.busyKeys[key] {
		return key, false
	}
	return key, od.keys[key][0].qseq == q
}

// orderKey computes the key of a delivery; one that fails to evaluate, or
// is not a string or a number, is "" (logged).
func (p *Pipeline) orderKey(d *destination.Destination, h nats.Header, data []byte, evSeq uint64) string {
	if d.Flow.OrderKey == nil {
		return ""
	}
	ev, err := p.eventOf(h, data, evSeq)
	if err != nil {
		return ""
	}
	key, err := d.Flow.OrderKey.Key(filterEvent(ev))
	if err != nil {
		p.log.Warn("order_key did not give a string or a number: the event is ordered with the key \"\"",
			zap.String("destination", d.ID), zap.String("event", ev.ID), zap.Error(err))
	}
	return key
}

// orderEnded is told that an admitted delivery ended (acked or terminated:
// finished) or went back to the stream (a retry, a deferral). The next
// delivery of its key, when held here, is started.
func (p *Pipeline) orderEnded(m *orderedMsg, finished bool) {
	op := &p.order.parts[m.part]
	var next jetstream.Msg
	op.mu.Lock()
	if !op.busy[m.qseq] {
		op.mu.Unlock()
		return // told already
	}
	delete(op.busy, m.qseq)
	od := op.dests[m.dest]
	if od != nil {
		delete(od.busyKeys, m.key)
		if finished {
			if od.remove(m.qseq) {
				op.tracked--
			}
			if op.done == nil {
				op.done = map[uint64]time.Time{}
			}
			op.done[m.qseq] = time.Now()
		}
		if l := od.keys[m.key]; len(l) > 0 {
			if hm, ok := od.held[l[0].qseq]; ok {
				delete(od.held, l[0].qseq)
				next = hm
			}
		}
	}
	op.mu.Unlock()
	if next != nil {
		p.redispatch(next)
	}
	if finished {
		p.orderKick(m.part)
	}
}

// redispatch runs a held delivery through dispatch again.
func (p *Pipeline) redispatch(m jetstream.Msg) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.dispatch(m)
	}()
}

// orderStart starts the gate's loop, at the first ordered delivery.
func (p *Pipeline) orderStart() {
	p.order.kick = make(chan int, engine.Partitions)
	p.wg.Add(1)
	go p.orderLoop()
}

func (p *Pipeline) orderKick(pi int) {
	op := &p.order.parts[pi]
	op.mu.Lock()
	send := !op.kicked
	op.kicked = true
	op.mu.Unlock()
	if send {
		select {
		case p.order.kick <- pi:
		default:
		}
	}
}

// orderLoop scans the partitions whose deliveries wait: at once when
// kicked, and every orderRecheck while any ordered destination is indexed.
func (p *Pipeline) orderLoop() {
	defer p.wg.Done()
	t := time.NewTicker(orderRecheck)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			p.orderStop()
			return
		case pi := <-p.order.kick:
			p.orderRefresh(pi, false)
		case <-t.C:
			for pi := range p.order.parts {
				op := &p.order.parts[pi]
				op.mu.Lock()
				active := len(op.dests) > 0
				op.mu.Unlock()
				if active {
					p.orderRefresh(pi, true)
				}
			}
		}
	}
}

// orderStop sends the held deliveries back to the stream.
func (p *Pipeline) orderStop() {
	for pi := range p.order.parts {
		op := &p.order.parts[pi]
		op.mu.Lock()
		for _, od := range op.dests {
			for q, m := range od.held {
				sendBack(m)
				delete(od.held, q)
			}
		}
		op.mu.Unlock()
	}
}

// fanoutWatermark returns a sequence of the event stream up to which every
// event has been fanned out (its deliveries are in the queue stream).
func (p *Pipeline) fanoutWatermark(ctx context.Context) (uint64, error) {
	si, err := p.eng.EventStream.Info(ctx)
	if err != nil {
		return 0, err
	}
	c, err := p.eng.JetStream().Consumer(ctx, engine.StreamEvents, ConsumerFanout)
	if err != nil {
		return 0, err
	}
	ci := c.CachedInfo()
	if ci.NumPending == 0 && ci.NumAckPending == 0 {
		return si.State.LastSeq, nil
	}
	return ci.AckFloor.Stream, nil
}

// scanned is a delivery read by a scan.
type scanned struct {
	d     *destination.Destination
	key   string
	entry orderEntry
}

// orderRefresh brings a partition's index up to date and starts the held
// deliveries whose turn came; periodic (every orderRecheck) it also drops
// the heads finished elsewhere and touches the held deliveries.
func (p *Pipeline) orderRefresh(pi int, periodic bool) {
	op := &p.order.parts[pi]
	op.mu.Lock()
	op.kicked = false
	if len(op.dests) == 0 {
		op.mu.Unlock()
		return
	}
	gen, cursor, tracked := op.gen, op.cursor, op.tracked
	op.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, orderTimeout)
	defer cancel()

	w, werr := p.fanoutWatermark(ctx)
	subject := engine.PartitionSubject(engine.SubjectQueue, pi)
	end := false
	for !end && tracked < orderWindow && ctx.Err() == nil {
		var batch []scanned
		next := cursor
		for range orderScanBatch {
			raw, err := p.eng.QueueStream.GetMsg(ctx, max(next, 1), jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				end = true
				break
			}
			if err != nil {
				return // tried again at the next tick
			}
			next = raw.Sequence + 1
			d, ok := p.reg.Destination(raw.Header.Get(hdrDest))
			if !ok || !d.Flow.Ordered {
				continue
			}
			evSeq, err := strconv.ParseUint(raw.Header.Get(hdrEventSeq), 10, 64)
			if err != nil {
				continue
			}
			key := p.orderKey(d, raw.Header, raw.Data, evSeq)
			batch = append(batch, scanned{d: d, key: key, entry: orderEntry{evSeq: evSeq, qseq: raw.Sequence}})
			if tracked+len(batch) >= orderWindow {
				break
			}
		}
		op.mu.Lock()
		if op.gen != gen {
			op.mu.Unlock()
			p.orderKick(pi)
			return
		}
		for _, s := range batch {
			od := op.dests[s.d.ID]
			if od == nil || od.expr != s.d.Flow.OrderKey.String() {
				// Ordered since the scan began: indexed from now on,
				// read again from the start.
				op.destLocked(s.d)
				op.mu.Unlock()
				p.orderKick(pi)
				return
			}
			if _, finished := op.done[s.entry.qseq]; finished {
				continue
			}
			if od.add(s.key, s.entry) {
				op.tracked++
			}
		}
		op.cursor = next
		cursor, tracked = next, op.tracked
		if end && werr == nil {
			op.complete = max(op.complete, w)
		}
		op.mu.Unlock()
	}
	p.orderSweep(ctx, pi, periodic)
}

// orderSweep drops the destinations no longer ordered and the heads
// finished elsewhere, touches the held deliveries, and starts those whose
// turn came.
func (p *Pipeline) orderSweep(ctx context.Context, pi int, periodic bool) {
	op := &p.order.parts[pi]
	var start []jetstream.Msg
	var heads []uint64
	op.mu.Lock()
	touch := periodic && time.Since(op.touched) >= ackWait/3
	if touch {
		op.touched = time.Now()
	}
	for q, at := range op.done {
		if time.Since(at) > orderTimeout {
			delete(op.done, q)
		}
	}
	for id, od := range op.dests {
		d, ok := p.reg.Destination(id)
		if !ok || !d.Flow.Ordered || d.Flow.OrderKey.String() != od.expr {
			// Not ordered any more (or the key changed: indexed again
			// at its next delivery): what waits here goes now.
			for q, m := range od.held {
				start = append(start, m)
				delete(od.held, q)
			}
			op.tracked -= len(od.byQ)
			delete(op.dests, id)
			continue
		}
		if !periodic {
			continue
		}
		for key, l := range od.keys {
			if len(heads) >= orderStaleChecks {
				break
			}
			if len(l) > 1 && !od.busyKeys[key] && !op.busy[l[0].qseq] {
				heads = append(heads, l[0].qseq)
			}
		}
	}
	op.mu.Unlock()

	// A head that holds others up and is gone from the stream finished
	// elsewhere (or its end was not seen here).
	var gone []uint64
	for _, q := range heads {
		if _, err := p.eng.QueueStream.GetMsg(ctx, q); errors.Is(err, jetstream.ErrMsgNotFound) {
			gone = append(gone, q)
		}
	}
	var touched []jetstream.Msg
	op.mu.Lock()
	for _, od := range op.dests {
		for _, q := range gone {
			if !op.busy[q] && od.remove(q) {
				op.tracked--
			}
		}
		for q, m := range od.held {
			key, ok := od.byQ[q]
			if ok && op.cursor > q && !od.busyKeys[key] && od.keys[key][0].qseq == q && op.complete+1 >= od.keys[key][0].evSeq {
				start = append(start, m)
				delete(od.held, q)
			} else if !ok && op.cursor > q {
				start = append(start, m) // indexed when admitted
				delete(od.held, q)
			} else if touch {
				touched = append(touched, m)
			}
		}
	}
	op.mu.Unlock()
	for _, m := range touched {
		_ = m.InProgress()
	}
	for _, m := range start {
		p.redispatch(m)
	}
}

// OrderHeldBack is the number of deliveries of ordered destinations known
// to wait behind an earlier delivery of their key (in memory or in the
// stream), on this instance's view.
func (p *Pipeline) OrderHeldBack() int {
	n := 0
	for pi := range p.order.parts {
		op := &p.order.parts[pi]
		op.mu.Lock()
		for _, od := range op.dests {
			n += len(od.byQ) - len(od.keys)
		}
		op.mu.Unlock()
	}
	return n
}
