// Package cli is hookgate's command line: `caddy hookgate …` (the same
// binary as the gateway) manages workflows, subscriptions, topics, events
// and deliveries through the management API.
//
// It is an HTTP client of the API and depends on its JSON shapes only, not
// on the gateway's packages. The API address and token come from flags or
// the environment, defaulting to the root Caddyfile's:
//
//	--api         HOOKGATE_API         http://localhost:8080/api/hookgate
//	--token       HOOKGATE_TOKEN       (none: the token file is read)
//	--token-file  HOOKGATE_TOKEN_FILE  .hookgate/api-token
//
// Answers are printed as tables, or as the API's JSON with --json. A 4xx or
// 5xx answer prints the API's error and exits with status 1. A token is
// never printed; keys and secrets only where the API shows them once
// (workflow creation and regenerate, subscription creation and
// rotate-secret).
//
// Importing the package registers the command and makes `caddy version` and
// `caddy list-modules --versions` show hookgate's version (see version.go).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "hookgate",
		Usage: "<workflows|subscriptions|topics|events|deliveries|token> ...",
		Short: "Manages hookgate through its management API",
		Long: `
Manages hookgate's workflows, subscriptions, topics, events and deliveries
through the management API of a running gateway.

The API address is --api, else $HOOKGATE_API, else ` + DefaultAPI + `.
The bearer token is --token, else $HOOKGATE_TOKEN, else the content of the
token file: --token-file, else $HOOKGATE_TOKEN_FILE, else ` + DefaultTokenFile + `
(the root Caddyfile's, created by the gateway at its first start, relative to
the directory it runs in). 'hookgate token' prints the token file's path.

Output is a table; --json prints the API's JSON. A 4xx or 5xx answer prints
the API's error and exits with status 1.
`,
		CobraFunc: func(cmd *cobra.Command) {
			hookgateCommand = cmd
			build(cmd)
		},
	})
}

// NewCommand returns the hookgate command on its own (as `caddy hookgate`
// has it), for tests and for embedding in another command tree.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "hookgate", Short: "Manages hookgate through its management API", SilenceUsage: true}
	build(cmd)
	return cmd
}

// app holds the global flags of one run.
type app struct {
	settings
	json bool
}

// build adds hookgate's flags and subcommands to cmd.
func build(cmd *cobra.Command) {
	a := &app{settings: settings{getenv: os.Getenv}}
	pf := cmd.PersistentFlags()
	pf.StringVar(&a.api, "api", "", "management API URL (env "+EnvAPI+"; default "+DefaultAPI+")")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the API token (env "+EnvTokenFile+"; default "+DefaultTokenFile+")")
	pf.StringVar(&a.token, "token", "", "API token (env "+EnvToken+"; prefer the environment or the token file: flags show in ps)")
	pf.BoolVar(&a.json, "json", false, "print the API's JSON instead of a table")
	pf.DurationVar(&a.timeout, "timeout", 0, "timeout of each API request (default 30s)")
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	cmd.AddCommand(
		a.workflowsCommand(),
		a.subscriptionsCommand(),
		a.topicsCommand(),
		a.eventsCommand(),
		a.deliveriesCommand(),
		a.tokenCommand(),
	)
}

// run wraps a subcommand: it builds the client, runs fn, and prints an
// error as "hookgate: …" on stderr (status 1) rather than cobra's usage.
func (a *app) run(fn func(ctx context.Context, c *client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage = true
		cmd.SilenceErrors = true
		c, err := a.client()
		if err == nil {
			err = fn(cmd.Context(), c, cmd, args)
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil // interrupted (tail)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "hookgate: "+err.Error())
		}
		return err
	}
}

// call makes one API request and returns its answer decoded; with --json
// it prints the answer as it came instead and returns a nil object.
func (a *app) call(ctx context.Context, c *client, cmd *cobra.Command, method, path string, query url.Values, body any) (obj, error) {
	raw, _, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	if a.json {
		return nil, printRaw(cmd.OutOrStdout(), raw)
	}
	var out obj
	if err := decode(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// printRaw prints an API answer as it came, one line.
func printRaw(w io.Writer, raw []byte) error {
	_, err := fmt.Fprintln(w, strings.TrimSpace(string(raw)))
	return err
}

// readJSONFile reads a JSON document from a file ("-": standard input).
func readJSONFile(cmd *cobra.Command, path string) (json.RawMessage, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxResponse))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s is not valid JSON", path)
	}
	return json.RawMessage(b), nil
}

// readObjectFile reads a JSON object from a file, or an empty object for "".
func readObjectFile(cmd *cobra.Command, path string) (obj, error) {
	out := obj{}
	if path == "" {
		return out, nil
	}
	raw, err := readJSONFile(cmd, path)
	if err != nil {
		return nil, err
	}
	if err := decode(raw, &out); err != nil || out == nil {
		return nil, fmt.Errorf("%s: a JSON object is expected", path)
	}
	return out, nil
}

// tokenCommand prints the token file's path.
func (a *app) tokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Prints the path of the API token file (never the token)",
		Long: `Prints the path of the token file the CLI reads: --token-file, else
$HOOKGATE_TOKEN_FILE, else ` + DefaultTokenFile + ` (the root Caddyfile's), made
absolute. Exits with status 1 when the file does not exist yet (the gateway
creates it at its first start).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			path := a.resolvedTokenFile()
			fmt.Fprintln(cmd.OutOrStdout(), path)
			if _, err := os.Stat(path); err != nil {
				err = fmt.Errorf("the token file does not exist yet: the gateway creates it at its first start (%w)", err)
				fmt.Fprintln(cmd.ErrOrStderr(), "hookgate: "+err.Error())
				return err
			}
			return nil
		},
	}
}
