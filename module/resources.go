package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookgate/hookgate/registry"
)

// DefaultIngressPrefix is the path prefix of workflow URLs.
const DefaultIngressPrefix = "/hooks"

// WorkflowConfig is a workflow declared in the configuration: the API's
// workflow fields, plus files and a pinned key.
type WorkflowConfig struct {
	registry.Workflow
	// SampleFile is a sample JSON payload file the contract is inferred
	// from (relative to the working directory).
	SampleFile string `json:"sample_file,omitempty"`
	// SchemaFile is a JSON Schema file; local $refs resolve next to it.
	SchemaFile string `json:"schema_file,omitempty"`
	// Key pins the workflow's key (placeholders such as {env.X} allowed).
	// Default: none; the key is generated with the API's regenerate route
	// and only its hash is stored.
	Key string `json:"key,omitempty"`
}

// compile loads the files, resolves placeholders and compiles.
func (wc WorkflowConfig) compile(repl *caddy.Replacer, guard registry.URLChecker) (*registry.CompiledWorkflow, error) {
	w := wc.Workflow
	w.Source = registry.SourceConfig
	if wc.SampleFile != "" {
		b, err := os.ReadFile(wc.SampleFile)
		if err != nil {
			return nil, &registry.InvalidError{Field: "sample", Err: err}
		}
		w.Sample = b
	}
	if wc.SchemaFile != "" {
		b, err := os.ReadFile(wc.SchemaFile)
		if err != nil {
			return nil, &registry.InvalidError{Field: "schema", Err: err}
		}
		w.Schema = b
		w.SchemaLocation, _ = filepath.Abs(wc.SchemaFile)
	}
	if wc.Key != "" {
		w.FixedKey = repl.ReplaceAll(wc.Key, "")
		if len(w.FixedKey) < 16 {
			return nil, &registry.InvalidError{Field: "key", Err: fmt.Errorf("a pinned key must be at least 16 characters (got %d)", len(w.FixedKey))}
		}
	}
	w.Targets = append([]registry.Target(nil), w.Targets...)
	for i := range w.Targets {
		t := &w.Targets[i]
		if t.Secret != "" {
			t.Secret = repl.ReplaceAll(t.Secret, "")
		}
		if len(t.Headers) > 0 {
			headers := make(map[string]string, len(t.Headers))
			for k, v := range t.Headers {
				headers[k] = repl.ReplaceAll(v, "")
			}
			t.Headers = headers
		}
	}
	if v := w.Verify; v != nil {
		vc := *v
		vc.Secrets = make([]string, len(v.Secrets))
		for i, s := range v.Secrets {
			vc.Secrets[i] = repl.ReplaceAll(s, "")
		}
		w.Verify = &vc
	}
	return registry.CompileWorkflow(w, guard)
}

// TopicConfig is a topic declared in the configuration.
type TopicConfig struct {
	registry.Topic
	// SchemaFile is a JSON Schema file for the data of published events.
	SchemaFile string `json:"schema_file,omitempty"`
}

func (tc TopicConfig) compile() (*registry.CompiledTopic, error) {
	t := tc.Topic
	t.Source = registry.SourceConfig
	if tc.SchemaFile != "" {
		b, err := os.ReadFile(tc.SchemaFile)
		if err != nil {
			return nil, &registry.InvalidError{Field: "schema", Err: err}
		}
		t.Schema = json.RawMessage(b)
		t.SchemaLocation, _ = filepath.Abs(tc.SchemaFile)
	}
	return registry.CompileTopic(t)
}

// SubscriptionConfig is a subscription declared in the configuration.
type SubscriptionConfig struct {
	registry.Subscription
}

func (sc SubscriptionConfig) compile(repl *caddy.Replacer, guard registry.URLChecker) (*registry.CompiledSubscription, error) {
	s := sc.Subscription
	s.Source = registry.SourceConfig
	if s.ID == "" {
		s.ID = s.Name
	}
	var err error
	if s.Secret, err = configSecret(repl.ReplaceAll(s.Secret, "")); err != nil {
		return nil, err
	}
	headers := make(map[string]string, len(s.Headers))
	for k, v := range s.Headers {
		headers[k] = repl.ReplaceAll(v, "")
	}
	s.Headers = headers
	return registry.CompileSubscription(s, "", guard)
}

// configSecret is a configuration subscription's secret: "none" (like no
// secret at all) leaves deliveries unsigned; "generate", which the API
// accepts, is refused: a secret generated at every start could never be
// shown to the subscriber.
func configSecret(secret string) (string, error) {
	switch secret {
	case "none":
		return "", nil
	case "generate":
		return "", &registry.InvalidError{Field: "secret", Err: errors.New(
			`"generate" is for subscriptions created through the API: give the secret (e.g. {env.WEBHOOK_SECRET}) or none`)}
	}
	return secret, nil
}
