package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// eventsCommand: hookgate events publish|get|tail.
func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Aliases: []string{"event"}, Short: "Published and received events"}

	var p struct{ topic, data, file, id, tenant, user, at string }
	publishCmd := &cobra.Command{
		Use:   "publish --topic TOPIC [--data JSON | --file data.json] [--id ID]",
		Short: "Publishes an event on a topic",
		Example: `  caddy hookgate events publish --topic user.created --data '{"id":42}'
  echo '{"id":42}' | caddy hookgate events publish --topic user.created --file -`,
		Args: cobra.NoArgs,
	}
	pf := publishCmd.Flags()
	pf.StringVarP(&p.topic, "topic", "t", "", "topic (required)")
	pf.StringVar(&p.data, "data", "", "event data (JSON)")
	pf.StringVarP(&p.file, "file", "f", "", "JSON file with the event data (- for standard input)")
	pf.StringVar(&p.id, "id", "", "event id (a repeated id is not published twice)")
	pf.StringVar(&p.tenant, "tenant", "", "tenant")
	pf.StringVar(&p.user, "user", "", "user")
	pf.StringVar(&p.at, "time", "", "when the event occurred, RFC 3339 (default: now)")
	_ = publishCmd.MarkFlagRequired("topic")
	publishCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
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
