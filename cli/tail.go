package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tailOptions configure `events tail`.
type tailOptions struct {
	workflow, subscription string
	interval               time.Duration
	json                   bool
}

// maxTailEvents bounds the event ids tail remembers (to print each event
// once); past it, it forgets them all.
const maxTailEvents = 10000

// tailSkew is how far before its start tail reads the log, for a gateway
// whose clock is a little behind this machine's.
const tailSkew = 5 * time.Second

// tailer follows the delivery log. The log lists each delivery at its
// latest change, in the order of the changes, a page at a time; the last
// page has no cursor, so every poll reads again from the last cursor
// received, and the states already printed (status and attempt count per
// delivery on that last page) tell what is new.
type tailer struct {
	c      *client
	opts   tailOptions
	out    io.Writer
	cursor string
	// since is the tail's start, less a margin for clock skew: the log is
	// read from there (GET /deliveries?since=), so a start costs the same
	// with a short log or a long one.
	since  string
	seen   map[string]string // delivery id → state printed, on the last page
	events map[string]bool   // event ids printed
}

// tail prints new events and delivery outcomes until ctx ends. It starts at
// the end of the log: what happened before is not printed.
func tail(ctx context.Context, c *client, out io.Writer, opts tailOptions) error {
	if opts.interval <= 0 {
		opts.interval = time.Second
	}
	t := &tailer{c: c, opts: opts, out: out, seen: map[string]string{}, events: map[string]bool{},
		since: time.Now().Add(-tailSkew).UTC().Format(time.RFC3339Nano)}
	if err := t.poll(ctx, false); err != nil {
		return err
	}
	if !opts.json {
		fmt.Fprintln(out, "following new events and deliveries (interrupt to stop)")
	}
	tick := time.NewTicker(opts.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := t.poll(ctx, true); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// poll reads the log from the cursor to its end, printing what changed
// when print is set.
func (t *tailer) poll(ctx context.Context, print bool) error {
	q := url.Values{"limit": {"1000"}}
	if t.opts.workflow != "" {
		q.Set("workflow", t.opts.workflow)
	}
	if t.opts.subscription != "" {
		q.Set("subscription", t.opts.subscription)
	}
	if t.since != "" {
		q.Set("since", t.since)
	}
	for {
		if t.cursor != "" {
			q.Set("after", t.cursor)
		}
		raw, _, err := t.c.do(ctx, http.MethodGet, "/deliveries", q, nil)
		if err != nil {
			return err
		}
		var page obj
		if err := decode(raw, &page); err != nil {
			return err
		}
		onPage := map[string]string{}
		for _, rec := range list(page, "deliveries") {
			id := str(rec, "id")
			state := str(rec, "status") + "/" + strconv.Itoa(len(list(rec, "attempts"))) + "/" + str(rec, "replays") + "/" + str(rec, "updated_at")
			onPage[id] = state
			if t.seen[id] == state {
				continue
			}
			if !print {
				t.markEvent(str(rec, "event_id"))
				continue
			}
			if err := t.printEvent(ctx, rec); err != nil {
				return err
			}
			t.printDelivery(rec)
		}
		next := str(page, "next")
		if next == "" {
			// The last page: read again from the same cursor next time.
			t.seen = onPage
			return nil
		}
		// Entries before the cursor are not listed again: a delivery that
		// changes is listed at its new entry, after it.
		t.cursor = next
		t.seen = map[string]string{}
	}
}

// printEvent prints the event of a delivery the first time one shows.
func (t *tailer) printEvent(ctx context.Context, rec obj) error {
	id := str(rec, "event_id")
	if id == "" || t.events[id] {
		return nil
	}
	t.markEvent(id)
	ev := obj{"id": id}
	raw, _, err := t.c.do(ctx, http.MethodGet, "/events/"+url.PathEscape(id), nil, nil)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		var body obj
		if decode(raw, &body) == nil {
			if e, ok := body["event"].(obj); ok {
				ev = e
			}
		}
	}
	if t.opts.json {
		return t.line(obj{"type": "event", "event": ev})
	}
	what := "topic=" + str(ev, "topic")
	if w := str(ev, "workflow"); w != "" {
		what = "workflow=" + w
	}
	when := clock(str(ev, "time"))
	if when == "" {
		when = clock(str(rec, "updated_at"))
	}
	fmt.Fprintf(t.out, "%s  event     %s  %s\n", when, id, what)
	return nil
}

// markEvent remembers that an event was printed (or is history).
func (t *tailer) markEvent(id string) {
	if len(t.events) >= maxTailEvents {
		t.events = map[string]bool{}
	}
	t.events[id] = true
}

// printDelivery prints a delivery's new state.
func (t *tailer) printDelivery(rec obj) {
	if t.opts.json {
		_ = t.line(obj{"type": "delivery", "delivery": rec})
		return
	}
	status := str(rec, "status")
	parts := []string{clock(str(rec, "updated_at")), "  delivery  ", str(rec, "id"), "  ", owner(rec)}
	atts := list(rec, "attempts")
	switch status {
	case "pending":
		parts = append(parts, "  retrying")
	default:
		parts = append(parts, "  "+status)
	}
	if a := lastAttempt(rec); a != nil {
		parts = append(parts, "  attempt="+strconv.Itoa(len(atts)))
		if code := str(a, "status_code"); code != "" {
			parts = append(parts, " code="+code)
		}
		parts = append(parts, " "+str(a, "duration_ms")+"ms")
		if e := str(a, "error"); e != "" && status != "succeeded" {
			parts = append(parts, "  error="+strconv.Quote(e))
		}
	}
	if next := str(rec, "next_attempt_at"); next != "" && status == "pending" {
		parts = append(parts, "  next="+clock(next))
	}
	if reason := str(rec, "reason"); reason != "" {
		parts = append(parts, "  reason="+strconv.Quote(reason))
	}
	fmt.Fprintln(t.out, strings.Join(parts, ""))
}

func (t *tailer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(t.out, string(b))
	return err
}

// interruptible returns a context that ends at SIGINT or SIGTERM.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
