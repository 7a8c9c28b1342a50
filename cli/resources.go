package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// workflowsCommand: hookgate workflows list|get|create|regenerate|delete.
func (a *app) workflowsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "workflows", Aliases: []string{"workflow"}, Short: "Incoming webhook workflows"}

	listCmd := &cobra.Command{Use: "list", Short: "Lists the workflows", Args: cobra.NoArgs}
	listCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		body, err := a.call(ctx, c, cmd, http.MethodGet, "/workflows", nil, nil)
		if err != nil || body == nil {
			return err
		}
		var rows [][]string
		for _, w := range list(body, "workflows") {
			if b := str(w, "broken"); b != "" {
				rows = append(rows, []string{str(w, "id"), "BROKEN: " + b, str(w, "source"), "-", "-", "-"})
				continue
			}
			var targets []string
			for _, t := range list(w, "targets") {
				targets = append(targets, str(t, "url"))
			}
			rows = append(rows, []string{str(w, "id"), str(w, "name"), str(w, "source"), str(w, "enabled"), str(w, "has_key"), strings.Join(targets, " ")})
		}
		return table(cmd.OutOrStdout(), []string{"ID", "NAME", "SOURCE", "ENABLED", "HAS KEY", "TARGETS"}, rows)
	})

	getCmd := &cobra.Command{Use: "get ID", Short: "Shows a workflow", Args: cobra.ExactArgs(1)}
	getCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		w, err := a.call(ctx, c, cmd, http.MethodGet, "/workflows/"+url.PathEscape(args[0]), nil, nil)
		if err != nil || w == nil {
			return err
		}
		targets := list(w, "targets")
		delete(w, "targets")
		out := cmd.OutOrStdout()
		if err := fields(out, w, "id", "name", "description", "source", "enabled", "broken", "has_key", "filter"); err != nil {
			return err
		}
		if len(targets) == 0 {
			return nil
		}
		fmt.Fprintf(out, "\n%d targets\n", len(targets))
		rows := make([][]string, 0, len(targets))
		for _, t := range targets {
			rows = append(rows, []string{str(t, "id"), str(t, "method"), str(t, "url"), str(t, "envelope"), str(t, "timeout"), str(t, "circuit.state")})
		}
		return table(out, []string{"ID", "METHOD", "URL", "ENVELOPE", "TIMEOUT", "CIRCUIT"}, rows)
	})

	var f struct {
		file, id, name, description, sample, schema, filter, idempotency string
		targets                                                          []string
		disabled                                                         bool
	}
	createCmd := &cobra.Command{
		Use:   "create [--file workflow.json] [flags]",
		Short: "Creates a workflow and prints its URL and key (shown once)",
		Long: `Creates a workflow from a JSON file (the API's POST /workflows body) and/or
flags; flags override the file's fields. The answer's URL and key are printed:
the key is shown this once (regenerate makes a new one).`,
		Example: `  caddy hookgate workflows create --id orders --name Orders \
      --sample order.json --target http://127.0.0.1:3000/orders`,
		Args: cobra.NoArgs,
	}
	fl := createCmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "JSON file with the workflow (- for standard input)")
	fl.StringVar(&f.id, "id", "", "workflow id, part of its URL (default: a new wf_ id)")
	fl.StringVar(&f.name, "name", "", "name")
	fl.StringVar(&f.description, "description", "", "description")
	fl.StringVar(&f.sample, "sample", "", "JSON file with a sample payload (the contract is inferred from it)")
	fl.StringVar(&f.schema, "schema", "", "JSON file with a JSON Schema")
	fl.StringVar(&f.filter, "filter", "", "expr filter: only matching payloads are forwarded")
	fl.StringVar(&f.idempotency, "idempotency-header", "", "request header whose value deduplicates requests")
	fl.StringArrayVar(&f.targets, "target", nil, "target URL (repeatable)")
	fl.BoolVar(&f.disabled, "disabled", false, "create it disabled")
	createCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		body, err := readObjectFile(cmd, f.file)
		if err != nil {
			return err
		}
		for k, v := range map[string]string{"id": f.id, "name": f.name, "description": f.description, "filter": f.filter, "idempotency_header": f.idempotency} {
			if v != "" {
				body[k] = v
			}
		}
		for k, path := range map[string]string{"sample": f.sample, "schema": f.schema} {
			if path != "" {
				if body[k], err = readJSONFile(cmd, path); err != nil {
					return err
				}
			}
		}
		if len(f.targets) > 0 {
			targets := make([]obj, 0, len(f.targets))
			for _, t := range f.targets {
				targets = append(targets, obj{"url": t})
			}
			body["targets"] = targets
		}
		if f.disabled {
			body["enabled"] = false
		}
		w, err := a.call(ctx, c, cmd, http.MethodPost, "/workflows", nil, body)
		if err != nil || w == nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "workflow %s created\n", str(w, "id"))
		fmt.Fprintf(out, "url: %s\nkey: %s\n", str(w, "url"), str(w, "key"))
		fmt.Fprintln(out, "The key is shown this once: keep it now ('workflows regenerate' makes a new one).")
		return nil
	})

	var grace string
	regenCmd := &cobra.Command{
		Use:   "regenerate ID [--grace 1h]",
		Short: "Makes a new key for a workflow and prints its URL and key (shown once)",
		Args:  cobra.ExactArgs(1),
	}
	regenCmd.Flags().StringVar(&grace, "grace", "", "how long the old key keeps working (default: refused at once)")
	regenCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		body := obj{}
		if grace != "" {
			body["grace"] = grace
		}
		w, err := a.call(ctx, c, cmd, http.MethodPost, "/workflows/"+url.PathEscape(args[0])+"/regenerate", nil, body)
		if err != nil || w == nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "url: %s\nkey: %s\n", str(w, "url"), str(w, "key"))
		return nil
	})

	deleteCmd := &cobra.Command{Use: "delete ID", Short: "Deletes a workflow and its key", Args: cobra.ExactArgs(1)}
	deleteCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		return a.remove(ctx, c, cmd, "/workflows/"+url.PathEscape(args[0]), "workflow "+args[0])
	})

	cmd.AddCommand(listCmd, getCmd, createCmd, regenCmd, deleteCmd)
	return cmd
}

// subscriptionsCommand: hookgate subscriptions
// list|get|create|delete|enable|disable|test|rotate-secret.
func (a *app) subscriptionsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "subscriptions", Aliases: []string{"subscription"}, Short: "Outgoing subscriptions to topics"}

	listCmd := &cobra.Command{Use: "list", Short: "Lists the subscriptions", Args: cobra.NoArgs}
	listCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		body, err := a.call(ctx, c, cmd, http.MethodGet, "/subscriptions", nil, nil)
		if err != nil || body == nil {
			return err
		}
		var rows [][]string
		for _, s := range list(body, "subscriptions") {
			if b := str(s, "broken"); b != "" {
				rows = append(rows, []string{str(s, "id"), "BROKEN: " + b, "-", "-", "-", str(s, "source"), "-"})
				continue
			}
			rows = append(rows, []string{str(s, "id"), str(s, "name"), str(s, "topics"), str(s, "url"), str(s, "enabled"), str(s, "source"), str(s, "circuit.state")})
		}
		return table(cmd.OutOrStdout(), []string{"ID", "NAME", "TOPICS", "URL", "ENABLED", "SOURCE", "CIRCUIT"}, rows)
	})

	getCmd := &cobra.Command{Use: "get ID", Short: "Shows a subscription", Args: cobra.ExactArgs(1)}
	getCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		return a.show(ctx, c, cmd, "/subscriptions/"+url.PathEscape(args[0]), "id", "name", "description", "source", "enabled", "disabled_reason", "topics", "url", "has_secret")
	})

	var f struct {
		file, name, description, url, secret string
		topics, include, exclude, headers    []string
		maxAttempts                          int
		disabled                             bool
	}
	createCmd := &cobra.Command{
		Use:   "create [--file subscription.json] [flags]",
		Short: "Creates a subscription and prints its signing secret (shown once)",
		Long: `Creates a subscription from a JSON file (the API's POST /subscriptions body)
and/or flags; flags override the file's fields. A secret the API shows (one
given, or a new whsec_ secret) is printed this once.`,
		Example: `  caddy hookgate subscriptions create --name crm --topic user.created \
      --url https://crm.example.com/hooks --include 'data.plan == "pro"'`,
		Args: cobra.NoArgs,
	}
	fl := createCmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "JSON file with the subscription (- for standard input)")
	fl.StringVar(&f.name, "name", "", "name (unique)")
	fl.StringVar(&f.description, "description", "", "description")
	fl.StringArrayVar(&f.topics, "topic", nil, "topic (repeatable; * patterns as the API takes them)")
	fl.StringVar(&f.url, "url", "", "URL the events are POSTed to")
	fl.StringVar(&f.secret, "secret", "", `signing secret: a value, "generate" (default) or "none"`)
	fl.StringArrayVar(&f.include, "include", nil, "expr predicate an event must match (repeatable: any one)")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "expr predicate that keeps an event out (repeatable)")
	fl.StringArrayVar(&f.headers, "header", nil, "header sent with each delivery, Name=value (repeatable)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "attempts before a delivery fails (default: the gateway's)")
	fl.BoolVar(&f.disabled, "disabled", false, "create it disabled")
	createCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		body, err := readObjectFile(cmd, f.file)
		if err != nil {
			return err
		}
		for k, v := range map[string]string{"name": f.name, "description": f.description, "url": f.url, "secret": f.secret} {
			if v != "" {
				body[k] = v
			}
		}
		if len(f.topics) > 0 {
			body["topics"] = f.topics
		}
		if len(f.include) > 0 {
			body["include"] = f.include
		}
		if len(f.exclude) > 0 {
			body["exclude"] = f.exclude
		}
		if len(f.headers) > 0 {
			h := map[string]string{}
			for _, kv := range f.headers {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--header %q: Name=value expected", kv)
				}
				h[k] = v
			}
			body["headers"] = h
		}
		if f.maxAttempts > 0 {
			body["max_attempts"] = f.maxAttempts
		}
		if f.disabled {
			body["enabled"] = false
		}
		s, err := a.call(ctx, c, cmd, http.MethodPost, "/subscriptions", nil, body)
		if err != nil || s == nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "subscription %s created\n", str(s, "id"))
		if secret := str(s, "secret"); secret != "" {
			fmt.Fprintf(out, "secret: %s\nThe secret is shown this once: keep it now ('subscriptions rotate-secret' makes a new one).\n", secret)
		}
		return nil
	})

	deleteCmd := &cobra.Command{Use: "delete ID", Short: "Deletes a subscription", Args: cobra.ExactArgs(1)}
	deleteCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		return a.remove(ctx, c, cmd, "/subscriptions/"+url.PathEscape(args[0]), "subscription "+args[0])
	})

	enable := func(on bool) func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		return func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
			raw, _, err := c.do(ctx, http.MethodPatch, "/subscriptions/"+url.PathEscape(args[0]), nil, obj{"enabled": on})
			if err != nil {
				return err
			}
			if a.json {
				return printRaw(cmd.OutOrStdout(), raw)
			}
			state := "disabled"
			if on {
				state = "enabled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "subscription %s %s\n", args[0], state)
			return nil
		}
	}
	enableCmd := &cobra.Command{Use: "enable ID", Short: "Enables a subscription (also one disabled by a 410 Gone)", Args: cobra.ExactArgs(1)}
	enableCmd.RunE = a.run(enable(true))
	disableCmd := &cobra.Command{Use: "disable ID", Short: "Disables a subscription", Args: cobra.ExactArgs(1)}
	disableCmd.RunE = a.run(enable(false))

	var t struct{ data, file, raw, text, topic string }
	testCmd := &cobra.Command{
		Use:   "test ID [--data JSON | --file event.json | --raw JSON | --body TEXT]",
		Short: "Delivers a test event to a subscription now, bypassing the queue",
		Long: `Sends one delivery now and prints the subscriber's answer. --data (or --file)
is the event's data, enveloped as usual; --raw and --body are sent exactly as
given, signed, with no envelope.`,
		Args: cobra.ExactArgs(1),
	}
	tf := testCmd.Flags()
	tf.StringVar(&t.data, "data", "", "event data (JSON)")
	tf.StringVarP(&t.file, "file", "f", "", "JSON file with the event ({topic?, data, …}) or its data")
	tf.StringVar(&t.raw, "raw", "", "JSON sent exactly as given")
	tf.StringVar(&t.text, "body", "", "text sent exactly as given")
	tf.StringVar(&t.topic, "topic", "", "the test event's topic (with --data)")
	testCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		var body any = obj{}
		switch {
		case t.file != "":
			raw, err := readJSONFile(cmd, t.file)
			if err != nil {
				return err
			}
			body = raw
		case t.raw != "":
			if !json.Valid([]byte(t.raw)) {
				return fmt.Errorf("--raw is not valid JSON")
			}
			body = obj{"raw": json.RawMessage(t.raw)}
		case t.text != "":
			body = obj{"body": t.text}
		case t.data != "":
			if !json.Valid([]byte(t.data)) {
				return fmt.Errorf("--data is not valid JSON")
			}
			ev := obj{"data": json.RawMessage(t.data)}
			if t.topic != "" {
				ev["topic"] = t.topic
			}
			body = ev
		}
		res, err := a.call(ctx, c, cmd, http.MethodPost, "/subscriptions/"+url.PathEscape(args[0])+"/test", nil, body)
		if err != nil || res == nil {
			return err
		}
		if err := fields(cmd.OutOrStdout(), res, "success", "status", "duration_ms", "error", "event_id", "body"); err != nil {
			return err
		}
		if ok, _ := res["success"].(bool); !ok {
			return fmt.Errorf("the test delivery failed")
		}
		return nil
	})

	var rotGrace string
	rotateCmd := &cobra.Command{
		Use:   "rotate-secret ID [--grace 24h]",
		Short: "Makes a new signing secret and prints it (shown once)",
		Long:  "Makes a new signing secret; during the grace period (default 24h) deliveries carry both signatures.",
		Args:  cobra.ExactArgs(1),
	}
	rotateCmd.Flags().StringVar(&rotGrace, "grace", "", "how long the old secret keeps signing too (default 24h)")
	rotateCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error {
		body := obj{}
		if rotGrace != "" {
			body["grace"] = rotGrace
		}
		s, err := a.call(ctx, c, cmd, http.MethodPost, "/subscriptions/"+url.PathEscape(args[0])+"/rotate-secret", nil, body)
		if err != nil || s == nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "secret: %s\n", str(s, "secret"))
		return nil
	})

	cmd.AddCommand(listCmd, getCmd, createCmd, deleteCmd, enableCmd, disableCmd, testCmd, rotateCmd)
	return cmd
}

// topicsCommand: hookgate topics list.
func (a *app) topicsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Aliases: []string{"topic"}, Short: "Topics events are published on"}
	listCmd := &cobra.Command{Use: "list", Short: "Lists the topics", Args: cobra.NoArgs}
	listCmd.RunE = a.run(func(ctx context.Context, c *client, cmd *cobra.Command, _ []string) error {
		body, err := a.call(ctx, c, cmd, http.MethodGet, "/topics", nil, nil)
		if err != nil || body == nil {
			return err
		}
		var rows [][]string
		for _, t := range list(body, "topics") {
			desc := str(t, "description")
			if b := str(t, "broken"); b != "" {
				desc = "BROKEN: " + b
			}
			schema := "no"
			if t["schema"] != nil {
				schema = "yes"
			}
			rows = append(rows, []string{str(t, "name"), str(t, "source"), schema, desc})
		}
		return table(cmd.OutOrStdout(), []string{"NAME", "SOURCE", "SCHEMA", "DESCRIPTION"}, rows)
	})
	cmd.AddCommand(listCmd)
	return cmd
}

// show prints one resource: its fields, or its JSON.
func (a *app) show(ctx context.Context, c *client, cmd *cobra.Command, path string, first ...string) error {
	o, err := a.call(ctx, c, cmd, http.MethodGet, path, nil, nil)
	if err != nil || o == nil {
		return err
	}
	return fields(cmd.OutOrStdout(), o, first...)
}

// remove deletes a resource.
func (a *app) remove(ctx context.Context, c *client, cmd *cobra.Command, path, what string) error {
	if _, _, err := c.do(ctx, http.MethodDelete, path, nil, nil); err != nil {
		return err
	}
	if a.json {
		return printRaw(cmd.OutOrStdout(), []byte(`{"deleted":`+strconv.Quote(what)+`}`))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", what)
	return nil
}
