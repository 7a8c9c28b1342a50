package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/hookgate/hookgate/internal/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ports of the gateway these tests start (binary, not in-process): HTTP,
// HTTPS (unused) and admin, in 127.0.0.1:9500-9599.
const (
	httpPort  = 9510
	httpsPort = 9543
	adminPort = 9519
)

const testVersion = "v9.8.7-clitest"

var hookgate testenv.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	hookgate.Remove()
	os.Exit(code)
}

// binary builds ./caddy once, with hookgate's version set by -ldflags.
func binary(t *testing.T) string {
	t.Helper()
	return hookgate.Path(t, "../caddy", "-ldflags", "-X github.com/hookgate/hookgate.Version="+testVersion)
}

// cleanEnv is the test's environment without HOOKGATE_* variables.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKGATE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// gateway is the binary running a Caddyfile in its own directory.
type gateway struct {
	bin, dir string
	logs     *testenv.Buffer
	api      string
	outputs  *testenv.Buffer // everything the CLI printed, to check for secrets
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()
	home := t.TempDir()
	caddyfile := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	skip_install_trust
	grace_period 1s
	hookgate {
		storage_dir %s
		allow_targets 127.0.0.1/32
		topic user.created {
			description "A user signed up"
		}
	}
}

:%d {
	hookgate_ingress /hooks/*
	hookgate_api /api/hookgate/* {
		token_file .hookgate/api-token
	}
}
`, adminPort, httpPort, httpsPort, filepath.Join(dir, "state"), httpPort)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", "Caddyfile")
	cmd.Dir = dir
	cmd.Env = cleanEnv("HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	logs := new(testenv.Buffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs)
		}
		if os.Getenv("HOOKGATE_TEST_SHOW_LOGS") != "" {
			t.Logf("gateway logs:\n%s", logs)
		}
	})
	g := &gateway{bin: bin, dir: dir, logs: logs, api: fmt.Sprintf("http://127.0.0.1:%d/api/hookgate", httpPort), outputs: new(testenv.Buffer)}
	tokenFile := filepath.Join(dir, ".hookgate", "api-token")
	waitUntil(t, "the gateway's token file", 30*time.Second, func() bool {
		_, err := os.Stat(tokenFile)
		return err == nil
	})
	waitUntil(t, "the API", 30*time.Second, func() bool {
		resp, err := http.Get(g.api + "/topics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	return g
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs `hookgate hookgate args…` as a user would, in the gateway's
// directory (so the default token file is the gateway's), with the API
// address in HOOKGATE_API, and returns stdout, stderr and the exit code.
func (g *gateway) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return g.cliEnv(t, []string{"HOOKGATE_API=" + g.api}, args...)
}

func (g *gateway) cliEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(g.bin, append([]string{"hookgate"}, args...)...)
	cmd.Dir = g.dir
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	fmt.Fprintf(g.outputs, "$ %v\n%s%s", args, stdout.String(), stderr.String())
	return stdout.String(), stderr.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (g *gateway) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := g.cli(t, args...)
	if code != 0 {
		t.Fatalf("hookgate %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// fails runs the CLI and checks it exits 1 with want in stderr.
func (g *gateway) fails(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, code := g.cli(t, args...)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("hookgate %v: exit %d, want 1 with %q in stderr\nstdout: %s\nstderr: %s", args, code, want, out, errOut)
	}
}

// tailProc is a running `events tail`.
type tailProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func (g *gateway) startTail(t *testing.T, args ...string) *tailProc {
	t.Helper()
	cmd := exec.Command(g.bin, append([]string{"hookgate", "events", "tail", "--interval", "200ms"}, args...)...)
	cmd.Dir = g.dir
	cmd.Env = cleanEnv("HOOKGATE_API=" + g.api)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = g.outputs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tp := &tailProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(tp.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			tp.mu.Lock()
			tp.lines = append(tp.lines, sc.Text())
			tp.mu.Unlock()
			fmt.Fprintln(g.outputs, sc.Text())
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-tp.done; _ = cmd.Wait() })
	return tp
}

// waitLine waits for a line matching re and returns it.
func (tp *tailProc) waitLine(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var found string
	waitUntil(t, "a tail line matching "+re+" in:\n"+strings.Join(tp.snapshot(), "\n"), 30*time.Second, func() bool {
		for _, l := range tp.snapshot() {
			if rx.MatchString(l) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func (tp *tailProc) snapshot() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]string(nil), tp.lines...)
}

// stop interrupts the tail and checks that it exits 0.
func (tp *tailProc) stop(t *testing.T) {
	t.Helper()
	_ = tp.cmd.Process.Signal(os.Interrupt)
	<-tp.done
	if err := tp.cmd.Wait(); err != nil {
		t.Fatalf("tail did not exit cleanly on interrupt: %v", err)
	}
}

// sink answers the statuses it is given in turn, then 200.
func newSink(t *testing.T, statuses ...int) (*httptest.Server, func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		status := 200
		if n < len(statuses) {
			status = statuses[n]
		}
		n++
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestCLIAgainstGateway starts the binary on a Caddyfile and uses every
// subcommand as a user would.
func TestCLIAgainstGateway(t *testing.T) {
	g := startGateway(t)
	token, err := os.ReadFile(filepath.Join(g.dir, ".hookgate", "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{strings.TrimSpace(string(token))}

	// token: the default token file, relative to the working directory.
	if out := g.ok(t, "token"); strings.TrimSpace(out) != filepath.Join(g.dir, ".hookgate", "api-token") {
		t.Fatalf("token printed %q", out)
	}
	other := filepath.Join(t.TempDir(), "tok")
	if out, _, code := g.cliEnv(t, []string{"HOOKGATE_TOKEN_FILE=" + other}, "token"); code != 1 || strings.TrimSpace(out) != other {
		t.Fatalf("token with a missing HOOKGATE_TOKEN_FILE: exit %d, %q", code, out)
	}

	// Errors: no gateway, wrong token, unknown resources, bad flags.
	g.fails(t, "connection refused", "--api", "http://127.0.0.1:9599/api/hookgate", "topics", "list")
	g.fails(t, "[HTTP 401]", "--token", "wrong-token", "topics", "list")
	if _, errOut, code := g.cliEnv(t, []string{"HOOKGATE_API=" + g.api, "HOOKGATE_TOKEN_FILE=" + other}, "topics", "list"); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("missing token file: exit %d, %s", code, errOut)
	}
	g.fails(t, `workflow "nope" not found [HTTP 404]`, "workflows", "get", "nope")
	g.fails(t, "unknown flag", "workflows", "list", "--nope")

	// Topics and the token from the environment instead of the file.
	out, _, code := g.cliEnv(t, []string{"HOOKGATE_API=" + g.api, "HOOKGATE_TOKEN=" + secrets[0], "HOOKGATE_TOKEN_FILE=" + other}, "topics", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^user\.created\s+config\s+no\s+A user signed up$`).MatchString(out) {
		t.Fatalf("topics list: exit %d\n%s", code, out)
	}
	if out := g.ok(t, "--json", "topics", "list"); !json.Valid([]byte(out)) || !strings.Contains(out, `"name":"user.created"`) {
		t.Fatalf("topics list --json: %s", out)
	}

	// Follow everything from now on.
	tp := g.startTail(t)
	tp.waitLine(t, "^following new events")
	tj := g.startTail(t, "--json")

	// Workflows: create from flags and a file, list, get, regenerate.
	okSink, _ := newSink(t)
	sample := filepath.Join(t.TempDir(), "order.json")
	_ = os.WriteFile(sample, []byte(`{"order":{"id":1,"total":9.5}}`), 0o600)
	wfFile := filepath.Join(t.TempDir(), "wf.json")
	_ = os.WriteFile(wfFile, []byte(`{"description":"from a file","filter":"body.order.total > 1"}`), 0o600)
	out = g.ok(t, "workflows", "create", "--file", wfFile, "--id", "orders", "--name", "Orders", "--sample", sample, "--target", okSink.URL+"/orders")
	m := regexp.MustCompile(`(?m)^url: (http://\S+/hooks/orders/(\S+))\nkey: (\S+)$`).FindStringSubmatch(out)
	if m == nil || m[2] != m[3] {
		t.Fatalf("workflows create printed no URL and key:\n%s", out)
	}
	hookURL, key := m[1], m[3]
	secrets = append(secrets, key)
	g.fails(t, "[HTTP 409]", "workflows", "create", "--id", "orders", "--name", "Orders", "--sample", sample)
	g.fails(t, "[HTTP 422]", "workflows", "create", "--id", "bad", "--name", "Bad", "--sample", sample, "--target", "ftp://x")

	if out := g.ok(t, "workflows", "list"); !regexp.MustCompile(`(?m)^orders\s+Orders\s+api\s+true\s+true\s+` + regexp.QuoteMeta(okSink.URL) + `/orders$`).MatchString(out) {
		t.Fatalf("workflows list:\n%s", out)
	}
	out = g.ok(t, "workflows", "get", "orders")
	for _, want := range []string{`id:\s+orders`, `description:\s+from a file`, `filter:\s+body\.order\.total > 1`, `has_key:\s+true`, `1 targets`, `\S+\s+POST\s+` + regexp.QuoteMeta(okSink.URL) + `/orders\s+raw\s+10s\s+closed`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Fatalf("workflows get: no %q in\n%s", want, out)
		}
	}
	if out := g.ok(t, "--json", "workflows", "get", "orders"); !strings.Contains(out, `"has_key":true`) {
		t.Fatalf("workflows get --json: %s", out)
	}

	// A webhook: tail shows the event and its delivery.
	resp, err := http.Post(hookURL, "application/json", strings.NewReader(`{"order":{"id":7,"total":12}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	evLine := tp.waitLine(t, `  event     \S+  workflow=orders$`)
	eventID := strings.Fields(evLine)[3]
	tp.waitLine(t, `  delivery  \S+\.`+regexp.QuoteMeta(eventID)+`  workflow=orders  succeeded  attempt=1 code=200 \d+ms$`)

	// Publish a file of events (before any subscription to the topic):
	// NDJSON, then a JSON array of two batches, published again.
	ndjson := filepath.Join(t.TempDir(), "events.ndjson")
	_ = os.WriteFile(ndjson, []byte(`{"id":"batch-1","topic":"user.created","data":{"n":1}}
{"topic":"user.created","data":{"n":2},"tenant":"t1"}

{"id":"batch-1","topic":"user.created","data":{"n":1}}
`), 0o600)
	if out := g.ok(t, "events", "publish", "--file", ndjson); !regexp.MustCompile(`^batch-1 accepted\nevt_\w+ accepted\nbatch-1 duplicate\n$`).MatchString(out) {
		t.Fatalf("events publish --file (NDJSON): %q", out)
	}
	if out := g.ok(t, "events", "get", "batch-1"); !regexp.MustCompile(`(?m)^data:\s+\{"n":1\}$`).MatchString(out) {
		t.Fatalf("events get batch-1:\n%s", out)
	}
	var many []string
	for i := range 1001 {
		many = append(many, fmt.Sprintf(`{"id":"batch-a-%d","topic":"user.created","data":{"n":%d}}`, i, i))
	}
	array := filepath.Join(t.TempDir(), "events.json")
	_ = os.WriteFile(array, []byte("[\n  "+strings.Join(many, ",\n  ")+"\n]\n"), 0o600)
	for _, want := range []string{"accepted", "duplicate"} {
		out, errOut, code := g.cli(t, "events", "publish", "--file", array)
		if code != 0 || strings.Count(out, " "+want+"\n") != 1001 || !strings.HasPrefix(out, "batch-a-0 "+want+"\n") ||
			!strings.HasSuffix(out, "batch-a-1000 "+want+"\n") || !strings.Contains(errOut, "1001 events") {
			t.Fatalf("events publish --file (array, %s): exit %d\n%.300s\n%s", want, code, out, errOut)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	_ = os.WriteFile(bad, []byte(`{"id":"batch-2","topic":"user.created"}`+"\n"+`{"topic":"no.such.topic"}`+"\n"), 0o600)
	g.fails(t, `events 0 to 1 refused, none of them stored (no batch before it was): 1 invalid; event 1: topic "no.such.topic" not found`, "events", "publish", "--file", bad)
	g.fails(t, "[HTTP 404]", "events", "get", "batch-2")
	g.fails(t, "go with --topic", "events", "publish", "--file", ndjson, "--id", "x")

	// Subscriptions: one failing twice, then answering 200.
	failSink, hits := newSink(t, 500, 500)
	subFile := filepath.Join(t.TempDir(), "sub.json")
	_ = os.WriteFile(subFile, []byte(`{"retry_schedule":["1s"],"headers":{"X-Api-Key":"hdr-secret-value"}}`), 0o600)
	secrets = append(secrets, "hdr-secret-value")
	out = g.ok(t, "subscriptions", "create", "--file", subFile, "--name", "crm", "--topic", "user.created", "--url", failSink.URL+"/crm", "--max-attempts", "2")
	m = regexp.MustCompile(`(?m)^subscription (\S+) created\nsecret: (whsec_\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("subscriptions create:\n%s", out)
	}
	subID := m[1]
	secrets = append(secrets, m[2])
	if out := g.ok(t, "subscriptions", "list"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(subID) + `\s+crm\s+user\.created\s+\S+/crm\s+true\s+api\s+closed$`).MatchString(out) {
		t.Fatalf("subscriptions list:\n%s", out)
	}
	if out := g.ok(t, "subscriptions", "get", subID); !strings.Contains(out, "has_secret:") || !strings.Contains(out, `"X-Api-Key":"***"`) {
		t.Fatalf("subscriptions get:\n%s", out)
	}

	// Publish: tail shows the retry, then the failure.
	out = g.ok(t, "events", "publish", "--topic", "user.created", "--data", `{"user":42}`, "--id", "signup-42")
	if strings.TrimSpace(out) != "signup-42 accepted" {
		t.Fatalf("events publish: %q", out)
	}
	if out := g.ok(t, "events", "publish", "--topic", "user.created", "--data", `{"user":42}`, "--id", "signup-42"); strings.TrimSpace(out) != "signup-42 duplicate" {
		t.Fatalf("events publish again: %q", out)
	}
	g.fails(t, "[HTTP 404]", "events", "publish", "--topic", "no.such.topic", "--data", `{}`)
	g.fails(t, `required flag(s) "topic" not set`, "events", "publish", "--data", `{}`)
	tp.waitLine(t, `  event     signup-42  topic=user\.created$`)
	tp.waitLine(t, `  delivery  \S+\.signup-42  subscription=`+regexp.QuoteMeta(subID)+`  retrying  attempt=1 code=500 \d+ms  error="Internal Server Error"  next=`)
	failLine := tp.waitLine(t, `  delivery  \S+\.signup-42  subscription=`+regexp.QuoteMeta(subID)+`  failed  attempt=2 code=500 \d+ms  error="Internal Server Error"  reason="gave up after 2 attempts"$`)
	deliveryID := strings.Fields(failLine)[3]

	out = g.ok(t, "deliveries", "list", "--subscription", subID, "--status", "failed")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(deliveryID) + `\s+signup-42\s+` + regexp.QuoteMeta(subID) + `\s+failed\s+2\s+500\s`).MatchString(out) {
		t.Fatalf("deliveries list:\n%s", out)
	}
	if out := g.ok(t, "deliveries", "list", "--limit", "1", "--all", "--json"); strings.Count(out, "\n") != 2 {
		t.Fatalf("deliveries list --all --json: want 2 lines:\n%s", out)
	}
	if out := g.ok(t, "deliveries", "list", "--limit", "1"); !strings.Contains(out, "more: --after ") {
		t.Fatalf("deliveries list --limit 1: no cursor:\n%s", out)
	}
	out = g.ok(t, "deliveries", "get", deliveryID)
	if !regexp.MustCompile(`(?m)^status:\s+failed$`).MatchString(out) || !strings.Contains(out, "2 attempts") || !regexp.MustCompile(`(?m)^2\s+\S+ \S+\s+500\s+\d+\s+Internal Server Error\s+\{"ok":true\}$`).MatchString(out) {
		t.Fatalf("deliveries get:\n%s", out)
	}
	if out := g.ok(t, "events", "get", "signup-42"); !regexp.MustCompile(`(?m)^topic:\s+user\.created$`).MatchString(out) || !regexp.MustCompile(`(?m)^data:\s+\{"user":42\}$`).MatchString(out) || !strings.Contains(out, "1 deliveries") {
		t.Fatalf("events get:\n%s", out)
	}

	// Retry one: the sink now answers 200.
	if out := g.ok(t, "deliveries", "retry", deliveryID); !strings.HasPrefix(out, "delivery "+deliveryID+" queued again") {
		t.Fatalf("deliveries retry: %q", out)
	}
	tp.waitLine(t, `  delivery  `+regexp.QuoteMeta(deliveryID)+`  subscription=\S+  succeeded  attempt=3 code=200`)
	if hits() != 3 {
		t.Fatalf("the subscriber got %d requests, want 3", hits())
	}
	g.fails(t, "give a delivery ID, or --subscription or --workflow", "deliveries", "retry")
	g.fails(t, "--since", "deliveries", "retry", "--subscription", subID, "--since", "yesterday")
	// Bulk: every succeeded delivery of the subscription in the last hour.
	if out := g.ok(t, "deliveries", "retry", "--subscription", subID, "--status", "succeeded", "--since", "1h"); strings.TrimSpace(out) != "1 deliveries queued again" {
		t.Fatalf("bulk retry: %q", out)
	}
	waitUntil(t, "the bulk replay", 20*time.Second, func() bool { return hits() == 4 })

	// Enable, disable, test, rotate.
	if out := g.ok(t, "subscriptions", "disable", subID); strings.TrimSpace(out) != "subscription "+subID+" disabled" {
		t.Fatalf("disable: %q", out)
	}
	if out := g.ok(t, "subscriptions", "get", subID); !regexp.MustCompile(`(?m)^enabled:\s+false$`).MatchString(out) {
		t.Fatalf("after disable:\n%s", out)
	}
	g.ok(t, "subscriptions", "enable", subID)
	if out := g.ok(t, "subscriptions", "test", subID, "--data", `{"ping":true}`); !regexp.MustCompile(`(?m)^success:\s+true$`).MatchString(out) || !regexp.MustCompile(`(?m)^status:\s+200$`).MatchString(out) {
		t.Fatalf("subscriptions test:\n%s", out)
	}
	out = g.ok(t, "subscriptions", "rotate-secret", subID, "--grace", "1m")
	m = regexp.MustCompile(`^secret: (whsec_\S+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rotate-secret: %q", out)
	}
	secrets = append(secrets, m[1])

	out = g.ok(t, "workflows", "regenerate", "orders")
	m = regexp.MustCompile(`^url: \S+/hooks/orders/(\S+)\nkey: (\S+)\n$`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[2] == key {
		t.Fatalf("regenerate: %q", out)
	}
	secrets = append(secrets, m[2])

	// The JSON tail saw the same.
	jl := tj.waitLine(t, `"type":"delivery"`)
	var line struct {
		Type     string         `json:"type"`
		Delivery map[string]any `json:"delivery"`
	}
	if err := json.Unmarshal([]byte(jl), &line); err != nil || line.Delivery["id"] == nil {
		t.Fatalf("tail --json line %q: %v", jl, err)
	}
	tj.waitLine(t, `^\{"event":\{.*"id":"signup-42".*\},"type":"event"\}$`)
	tp.stop(t)
	tj.stop(t)

	// Delete.
	if out := g.ok(t, "subscriptions", "delete", subID); strings.TrimSpace(out) != "subscription "+subID+" deleted" {
		t.Fatalf("subscriptions delete: %q", out)
	}
	g.ok(t, "workflows", "delete", "orders")
	g.fails(t, "[HTTP 404]", "workflows", "delete", "orders")

	// The token never shows in the CLI's output; keys and secrets only
	// where they were shown once, and never in the gateway's log.
	all := g.outputs.String()
	if strings.Contains(all, secrets[0]) {
		t.Fatal("the API token was printed")
	}
	if n := strings.Count(all, secrets[3]); n != 1 {
		t.Fatalf("the subscription's secret was printed %d times", n)
	}
	if strings.Contains(all, "hdr-secret-value") {
		t.Fatal("a credential header's value was printed")
	}
	logs := g.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatalf("the gateway logged a key, token or secret (%.6s…)", s)
		}
	}
	// One structured line per accepted event and per failed or final attempt.
	for _, re := range []string{
		`"msg":"event accepted".*"event":"signup-42".*"topic":"user.created".*"destinations":1`,
		`"msg":"event accepted".*"workflow":"orders".*"destinations":1`,
		`"msg":"delivery attempt failed".*"delivery":"\S+\.signup-42".*"subscription":"` + regexp.QuoteMeta(subID) + `".*"status":500.*"attempt":1`,
		`"msg":"delivery failed".*"event":"signup-42".*"attempt":2`,
		`"msg":"delivery succeeded".*"workflow":"orders".*"status":200.*"attempt":1`,
	} {
		if !regexp.MustCompile(re).MatchString(logs) {
			t.Errorf("no log line matching %s", re)
		}
	}
}

// TestVersion: the binary reports hookgate's version, set with -ldflags.
func TestVersion(t *testing.T) {
	bin := binary(t)
	run := func(args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("version"); !strings.HasPrefix(out, "hookgate "+testVersion+" v2.") {
		t.Fatalf("version: %q", out)
	}
	if out := run("--version"); !strings.HasPrefix(out, "hookgate "+testVersion+" ") {
		t.Fatalf("--version: %q", out)
	}
	out := run("list-modules", "--versions")
	for _, id := range []string{"hookgate", "http.handlers.hookgate_api", "http.handlers.hookgate_ingress"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + ` ` + testVersion + `$`).MatchString(out) {
			t.Fatalf("list-modules --versions: no %q with the version:\n%s", id, out)
		}
	}
	if !regexp.MustCompile(`(?m)^http\.handlers\.reverse_proxy v2\.\S+$`).MatchString(out) {
		t.Fatalf("list-modules --versions: Caddy's modules lost their version:\n%s", out)
	}
	out = run("list-modules", "--versions", "--packages", "--skip-standard")
	if !strings.Contains(out, "hookgate "+testVersion+" github.com/hookgate/hookgate\n") {
		t.Fatalf("list-modules --packages:\n%s", out)
	}
	var mods []map[string]string
	if err := json.Unmarshal([]byte(run("list-modules", "--json", "--skip-standard")), &mods); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range mods {
		if m["module_name"] == "http.handlers.hookgate_api" {
			found = m["version"] == testVersion && m["package_url"] == "github.com/hookgate/hookgate"
		}
	}
	if !found {
		t.Fatalf("list-modules --json: %v", mods)
	}
}
