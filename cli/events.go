package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// eventsCommand: hookgate events publish|get|tail.
func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Aliases: []string{"event"}, Short: "Published and received events"}

	var p struct{ topic, data, file, id, tenant, user, at string }
	publishCmd := &cobra.Command{
		Use:   "publish --topic TOPIC [--data JSON | --file data.json] [--id ID] | --file events.ndjson",
		Short: "Publishes an event on a topic, or a file of events",
		Long: `With --topic, publishes one event on the topic: its data is --data, or the
JSON document of --file.

Without --topic, --file holds events, each the body of POST /events
({"id":…,"topic":…,"data":…,"tenant":…,"user":…,"time":…}): a JSON array, or
one JSON object a line (NDJSON). They are published through POST /events/batch,
at most 1000 events and 1 MiB a request, and printed "ID STATUS" one a line in
the file's order. An invalid event refuses its whole batch (nothing of it is
stored) and stops the command, naming the event by its place in the file
(from 0); the batches before it were published. Publishing the file again is
safe for events with an id: they are not stored twice (events without one
are).`,
		Example: `  caddy hookgate events publish --topic user.created --data '{"id":42}'
  echo '{"id":42}' | caddy hookgate events publish --topic user.created --file -
  caddy hookgate events publish --file events.ndjson`,
		Args: cobra.NoArgs,
	}
	pf := publishCmd.Flags()
	pf.StringVarP(&p.topic, "topic", "t", "", "topic (required unless --file holds events)")
	pf.StringVar(&p.data, "data", "", "event data (JSON)")
	pf.StringVarP(&p.file, "file", "f", "", "JSON file with the event data; without --topic, a JSON array or NDJSON file of events (- for standard input)")
	pf.StringVar(&p.id, "id", "", "event id (a repeated id is not published twice)")
	pf.StringVar(&p.tenant, "tenant", "", "tenant")
	pf.StringVar(&p.user, "user", "", "user")
	pf.StringVar(&p.at, "time", "", "when the event occurred, RFC 3339 (default: now)")
	publishCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		if p.topic == "" {
			switch {
			case p.file == "" || p.data != "":
				return fmt.Errorf(`required flag(s) "topic" not set (or --file alone, with a file of events)`)
			case p.id != "" || p.tenant != "" || p.user != "" || p.at != "":
				return fmt.Errorf("--id, --tenant, --user and --time go with --topic: in a file of events, each event has its own")
			}
			return a.publishFile(ctx, c, cmd, p.file)
		}
		ev := obj{"topic": p.topic}
		switch {
		case p.file != "":
			raw, err := readJSONFile(cmd, p.file)
			if err != nil {
				return err
			}
			ev["data"] = raw
		case p.data != "":
			if !json.Valid([]byte(p.data)) {
				return fmt.Errorf("--data is not valid JSON")
			}
			ev["data"] = json.RawMessage(p.data)
		}
		for k, v := range map[string]string{"id": p.id, "tenant": p.tenant, "user": p.user, "time": p.at} {
			if v != "" {
				ev[k] = v
			}
		}
		res, err := a.call(ctx, c, cmd, http.MethodPost, "/events", nil, ev)
		if err != nil || res == nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", str(res, "id"), str(res, "status"))
		return nil
	})

	getCmd := &cobra.Command{Use: "get ID", Short: "Shows an event and its deliveries", Args: cobra.ExactArgs(1)}
	getCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		body, err := a.call(ctx, c, cmd, http.MethodGet, "/events/"+url.PathEscape(args[0]), nil, nil)
		if err != nil || body == nil {
			return err
		}
		ev, _ := body["event"].(obj)
		out := cmd.OutOrStdout()
		if err := fields(out, ev, "id", "topic", "workflow", "time", "tenant", "user", "data"); err != nil {
			return err
		}
		recs := list(body, "deliveries")
		fmt.Fprintf(out, "\n%d deliveries\n", len(recs))
		if len(recs) == 0 {
			return nil
		}
		return table(out, deliveryHeader, deliveryRows(recs))
	})

	var t tailOptions
	tailCmd := &cobra.Command{
		Use:   "tail [--workflow ID | --subscription ID]",
		Short: "Follows new events and their delivery outcomes until interrupted",
		Long: `Prints each new event and each delivery outcome (an attempt that failed and
will be retried, a success, a final failure) as they happen, until interrupted.
It polls GET /deliveries with its cursor; an event shows once one of its
deliveries has been attempted. --json prints one JSON object a line:
{"type":"event","event":{…}} and {"type":"delivery","delivery":{…}}.`,
		Args: cobra.NoArgs,
	}
	tf := tailCmd.Flags()
	tf.StringVar(&t.workflow, "workflow", "", "only this workflow's deliveries")
	tf.StringVar(&t.subscription, "subscription", "", "only this subscription's deliveries")
	tf.DurationVar(&t.interval, "interval", time.Second, "how often to poll")
	tailCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		ctx, stop := interruptible(ctx)
		defer stop()
		t.json = a.json
		return tail(ctx, c, cmd.OutOrStdout(), t)
	})

	cmd.AddCommand(publishCmd, getCmd, tailCmd)
	return cmd
}

// deliveriesCommand: hookgate deliveries list|get|retry.
func (a *app) deliveriesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "deliveries", Aliases: []string{"delivery"}, Short: "Delivery attempts and their replay"}

	var q struct {
		subscription, workflow, event, status, after string
		limit                                        int
		all                                          bool
	}
	listCmd := &cobra.Command{
		Use:   "list [--subscription ID] [--workflow ID] [--event ID] [--status S]",
		Short: "Lists deliveries, oldest change first, a page at a time",
		Args:  cobra.NoArgs,
	}
	lf := listCmd.Flags()
	lf.StringVar(&q.subscription, "subscription", "", "only this subscription's")
	lf.StringVar(&q.workflow, "workflow", "", "only this workflow's")
	lf.StringVar(&q.event, "event", "", "only this event's")
	lf.StringVar(&q.status, "status", "", "pending, succeeded or failed")
	lf.IntVar(&q.limit, "limit", 0, "page size, 1 to 1000 (default 100)")
	lf.StringVar(&q.after, "after", "", "the cursor a previous page printed")
	lf.BoolVar(&q.all, "all", false, "follow the cursor to the last page")
	listCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		v := url.Values{}
		for k, s := range map[string]string{"subscription": q.subscription, "workflow": q.workflow, "event": q.event, "status": q.status, "after": q.after} {
			if s != "" {
				v.Set(k, s)
			}
		}
		if q.limit > 0 {
			v.Set("limit", strconv.Itoa(q.limit))
		}
		var recs []obj
		next := ""
		for {
			raw, _, err := c.do(ctx, http.MethodGet, "/deliveries", v, nil)
			if err != nil {
				return err
			}
			if a.json && !q.all {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			var page obj
			if err := decode(raw, &page); err != nil {
				return err
			}
			next = str(page, "next")
			if a.json {
				// --all --json: one record a line.
				for _, r := range list(page, "deliveries") {
					b, _ := json.Marshal(r)
					fmt.Fprintln(cmd.OutOrStdout(), string(b))
				}
			} else {
				recs = append(recs, list(page, "deliveries")...)
			}
			if !q.all || next == "" {
				break
			}
			v.Set("after", next)
		}
		if a.json {
			return nil
		}
		if err := table(cmd.OutOrStdout(), deliveryHeader, deliveryRows(recs)); err != nil {
			return err
		}
		if next != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "more: --after %s\n", next)
		}
		return nil
	})

	getCmd := &cobra.Command{Use: "get ID", Short: "Shows a delivery and its attempts", Args: cobra.ExactArgs(1)}
	getCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		rec, err := a.call(ctx, c, cmd, http.MethodGet, "/deliveries/"+url.PathEscape(args[0]), nil, nil)
		if err != nil || rec == nil {
			return err
		}
		atts := list(rec, "attempts")
		delete(rec, "attempts")
		out := cmd.OutOrStdout()
		if err := fields(out, rec, "id", "event_id", "workflow_id", "subscription_id", "destination", "status", "reason", "next_attempt_at"); err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%d attempts\n", len(atts))
		if len(atts) == 0 {
			return nil
		}
		rows := make([][]string, 0, len(atts))
		for i, at := range atts {
			rows = append(rows, []string{strconv.Itoa(i + 1), clock(str(at, "at")), str(at, "status_code"), str(at, "duration_ms"), str(at, "error"), str(at, "response")})
		}
		return table(out, []string{"#", "AT", "CODE", "MS", "ERROR", "RESPONSE"}, rows)
	})

	var r struct{ subscription, workflow, status, since, until string }
	retryCmd := &cobra.Command{
		Use:   "retry [ID | --subscription ID | --workflow ID] [--status failed] [--since 2h] [--until T]",
		Short: "Replays a finished delivery, or every one of a subscription or workflow",
		Long: `With an ID, replays that finished delivery with a fresh attempt budget.
With --subscription or --workflow instead, replays every finished delivery of
theirs with --status (failed, the default, or succeeded) whose last change is
between --since (default 24h ago) and --until; --since and --until take an
RFC 3339 time or a duration back from now (2h, 30m).`,
		Args: cobra.MaximumNArgs(1),
	}
	rf := retryCmd.Flags()
	rf.StringVar(&r.subscription, "subscription", "", "replay this subscription's deliveries")
	rf.StringVar(&r.workflow, "workflow", "", "replay this workflow's deliveries")
	rf.StringVar(&r.status, "status", "", "failed (default) or succeeded")
	rf.StringVar(&r.since, "since", "", "RFC 3339 time or duration ago (default 24h)")
	rf.StringVar(&r.until, "until", "", "RFC 3339 time or duration ago (default now)")
	retryCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		bulk := r.subscription != "" || r.workflow != "" || r.status != "" || r.since != "" || r.until != ""
		switch {
		case len(args) == 1 && bulk:
			return fmt.Errorf("give a delivery ID or --subscription/--workflow, not both")
		case len(args) == 1:
			rec, err := a.call(ctx, c, cmd, http.MethodPost, "/deliveries/"+url.PathEscape(args[0])+"/retry", nil, obj{})
			if err != nil || rec == nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "delivery %s queued again (%s)\n", str(rec, "id"), str(rec, "status"))
			return nil
		case r.subscription == "" && r.workflow == "":
			return fmt.Errorf("give a delivery ID, or --subscription or --workflow for a bulk retry")
		}
		body := obj{}
		for k, v := range map[string]string{"subscription": r.subscription, "workflow": r.workflow, "status": r.status} {
			if v != "" {
				body[k] = v
			}
		}
		now := time.Now()
		for k, v := range map[string]string{"since": r.since, "until": r.until} {
			if v == "" {
				continue
			}
			at, err := parseWhen(v, now)
			if err != nil {
				return fmt.Errorf("--%s: %w", k, err)
			}
			body[k] = at.UTC().Format(time.RFC3339Nano)
		}
		res, err := a.call(ctx, c, cmd, http.MethodPost, "/deliveries/retry", nil, body)
		if err != nil || res == nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "%s deliveries queued again", str(res, "queued"))
		if s := str(res, "skipped"); s != "" && s != "0" {
			fmt.Fprintf(out, ", %s skipped", s)
		}
		fmt.Fprintln(out)
		if n := str(res, "next_since"); n != "" {
			fmt.Fprintf(out, "more: --since %s\n", n)
		}
		return nil
	})

	cmd.AddCommand(listCmd, getCmd, retryCmd)
	return cmd
}

// parseWhen reads an RFC 3339 time or a duration back from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 2h", s)
	}
	return now.Add(-d), nil
}

// Bounds of one POST /events/batch (the API's MaxBatch and MaxBody).
const (
	batchEvents = 1000
	batchBytes  = 1 << 20
)

// publishFile publishes the events of a file through POST /events/batch,
// in batches of at most batchEvents events and batchBytes of body, and
// prints each event's id and status.
func (a *app) publishFile(ctx context.Context, c *client, cmd *cobra.Command, path string) error {
	evs, err := readEvents(cmd, path)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	counts := map[string]int{}
	for start := 0; start < len(evs); {
		body := []byte(`{"events":[`)
		end := start
		for end < len(evs) && end-start < batchEvents && (end == start || len(body)+len(evs[end])+3 <= batchBytes) {
			if end > start {
				body = append(body, ',')
			}
			body = append(body, evs[end]...)
			end++
		}
		body = append(body, "]}"...)
		raw, _, err := c.do(ctx, http.MethodPost, "/events/batch", nil, json.RawMessage(body))
		var res struct {
			Events []struct{ ID, Status string } `json:"events"`
			Errors []struct {
				Index int    `json:"index"`
				Error string `json:"error"`
			} `json:"errors"`
		}
		_ = json.Unmarshal(raw, &res)
		if a.json && (err == nil || len(res.Events) > 0) {
			if perr := printRaw(out, raw); perr != nil {
				return perr
			}
		} else {
			for _, r := range res.Events {
				id := r.ID
				if id == "" {
					id = "-" // not stored, and no id given
				}
				fmt.Fprintf(out, "%s %s\n", id, r.Status)
				counts[r.Status]++
			}
		}
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) {
				return err
			}
			done := fmt.Sprintf("events 0 to %d were published", start-1)
			if start == 0 {
				done = "no batch before it was"
			}
			if len(res.Errors) > 0 {
				first := res.Errors[0]
				return fmt.Errorf("events %d to %d refused, none of them stored (%s): %d invalid; event %d: %s [HTTP %d]",
					start, end-1, done, len(res.Errors), start+first.Index, first.Error, ae.Status)
			}
			if len(res.Events) > 0 {
				return fmt.Errorf("events %d to %d were stored in part (%s): %s; publishing the file again does not store events with an id twice",
					start, end-1, done, ae.Error())
			}
			return fmt.Errorf("events %d to %d: %w (%s)", start, end-1, err, done)
		}
		start = end
	}
	if !a.json {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d events: %d accepted, %d duplicate\n", len(evs), counts["accepted"], counts["duplicate"])
	}
	return nil
}

// readEvents reads a file of events ("-": standard input): a JSON array
// of objects, or JSON objects one after the other (NDJSON). Each comes
// back compacted.
func readEvents(cmd *cobra.Command, path string) ([]json.RawMessage, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(cmd.InOrStdin())
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	var evs []json.RawMessage
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &evs); err != nil {
			return nil, fmt.Errorf("%s is not a JSON array of events: %w", path, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			var ev json.RawMessage
			if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: event %d: %w", path, len(evs), err)
			}
			evs = append(evs, ev)
		}
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("%s holds no events", path)
	}
	for i, ev := range evs {
		var c bytes.Buffer
		if err := json.Compact(&c, ev); err != nil || c.Len() == 0 || c.Bytes()[0] != '{' {
			return nil, fmt.Errorf("%s: event %d is not a JSON object", path, i)
		}
		evs[i] = c.Bytes()
	}
	return evs, nil
}
