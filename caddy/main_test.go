package main

import (
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var hookgate testenv.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	hookgate.Remove()
	os.Exit(code)
}

// buildBinary builds this package once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	return hookgate.Path(t, ".")
}

// start runs the binary with config in dir and waits until url answers.
func start(t *testing.T, bin, dir, config, url string, env ...string) (*exec.Cmd, *testenv.Buffer) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, "run", "--config", config)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	cmd.Env = append(cmd.Env, env...)
	logs := new(testenv.Buffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return cmd, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("binary did not answer on %s: %v\n%s", url, err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func do(t *testing.T, method, url, token string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if json.Unmarshal(raw, &out) != nil {
		out["_raw"] = string(raw)
	}
	return resp.StatusCode, out
}

// TestRootCaddyfile starts the binary on the repository's Caddyfile, as the
// README's quick start does, and walks the quick start: token file, key,
// webhook, delivery.
func TestRootCaddyfile(t *testing.T) {
	bin := buildBinary(t)
	tokenFile := filepath.Join(t.TempDir(), "sub", "api-token")
	_, logs := start(t, bin, "..", "Caddyfile", "http://127.0.0.1:8080/", "HOOKGATE_TOKEN_FILE="+tokenFile)

	status, body := do(t, "GET", "http://127.0.0.1:8080/", "", nil)
	if status != 200 || !strings.Contains(body["_raw"].(string), "hookgate is running") {
		t.Fatalf("GET /: %d %v", status, body)
	}
	// The token file is created when the hookgate app starts, which Caddy
	// may do just after the HTTP server is up.
	var fi os.FileInfo
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fi, err = os.Stat(tokenFile); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("token file not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(raw))

	if status, _ := do(t, "GET", "http://127.0.0.1:8080/api/hookgate/workflows", "", nil); status != 401 {
		t.Fatalf("API without token: %d", status)
	}
	status, body = do(t, "POST", "http://127.0.0.1:8080/api/hookgate/workflows/easylife-provisioning/regenerate", token, nil)
	if status != 200 {
		t.Fatalf("regenerate: %d %v", status, body)
	}
	url, key := body["url"].(string), body["key"].(string)
	payload, _ := os.ReadFile("../examples/easylife/groupcreated.json")
	// EasyLife: "A status 200 OK is expected with no body" (respond 200).
	status, body = do(t, "POST", url, "", payload)
	if status != 200 || body["_raw"] != "" {
		t.Fatalf("webhook: %d %v, want 200 with no body", status, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, d := do(t, "GET", "http://127.0.0.1:8080/api/hookgate/deliveries?workflow=easylife-provisioning", token, nil)
		if ds, _ := d["deliveries"].([]any); len(ds) == 1 && ds[0].(map[string]any)["status"] == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery to the demo endpoint did not succeed: %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	planner, _ := os.ReadFile("../examples/easylife/plannercreated.json")
	if status, body = do(t, "POST", url, "", planner); status != 200 || body["_raw"] != "" {
		t.Fatalf("planner: %d %v, want 200 with no body", status, body)
	}
	if _, d := do(t, "GET", "http://127.0.0.1:8080/api/hookgate/deliveries?workflow=easylife-provisioning", token, nil); len(d["deliveries"].([]any)) != 1 {
		t.Errorf("the planner was forwarded: %v", d)
	}
	out := logs.String()
	if !strings.Contains(out, tokenFile) {
		t.Errorf("the token file's path should be logged")
	}
	for name, secret := range map[string]string{"token": token, "key": key} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}

// writeForwardCaddyfile writes dir/Caddyfile: a gateway on port storing in
// dir/data (with the extra global hookgate option, if any), whose workflow
// takes the EasyLife sample as its contract and forwards to target/in, and
// which answers "up" elsewhere. It returns the file's path.
func writeForwardCaddyfile(t *testing.T, dir string, port int, option, workflow, key, target string) string {
	t.Helper()
	cfg := fmt.Sprintf(`{
	admin off
	hookgate {
		storage_dir %s
		allow_targets 127.0.0.1/32
		%s
	}
}
:%d {
	hookgate_ingress /hooks/* {
		workflow %s {
			sample %s
			key %s
			forward %s/in
		}
	}
	respond "up" 200
}
`, filepath.Join(dir, "data"), option, port, workflow, mustAbs(t, "../examples/easylife/groupcreated.json"), key, target)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSIGKILLLosesNothing: every webhook answered 202 before the process is
// killed with SIGKILL is delivered after a restart.
func TestSIGKILLLosesNothing(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	got := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("Webhook-Id")]++
		mu.Unlock()
	}))
	defer sink.Close()
	dir := t.TempDir()
	const key = "sigkill-test-key-0123456789"
	cfgPath := writeForwardCaddyfile(t, dir, 9380, "", "crash", key, sink.URL)
	payload, _ := os.ReadFile("../examples/easylife/groupcreated.json")
	cmd, _ := start(t, bin, dir, cfgPath, "http://127.0.0.1:9380/")

	var accepted []string
	var amu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post("http://127.0.0.1:9380/hooks/crash/"+key, "application/json", bytes.NewReader(payload))
				if err != nil {
					continue // the process died mid-request: not accepted
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode == 202 {
					amu.Lock()
					accepted = append(accepted, out["id"].(string))
					amu.Unlock()
				}
			}
		}()
	}
	// Killed under load, once enough webhooks were accepted to count
	// (however slow the machine is).
	for begin := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		amu.Lock()
		n := len(accepted)
		amu.Unlock()
		if (n >= 200 && time.Since(begin) > time.Second) || time.Since(begin) > 30*time.Second {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(accepted) < 100 {
		t.Fatalf("only %d webhooks accepted before the kill", len(accepted))
	}

	start(t, bin, dir, cfgPath, "http://127.0.0.1:9380/")
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, id := range accepted {
			if got[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted webhooks never delivered after SIGKILL and restart", missing, len(accepted))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d webhooks accepted before SIGKILL, all delivered after restart", len(accepted))
}

// TestSIGINTHandsBackQueuedDeliveries: deliveries a stopping gateway had
// taken but not attempted (waiting for a slow target's one slot, or in a
// consumer's buffer) are delivered right after the restart, each once. A
// plain negative acknowledgement lived only in the server's memory: after the
// restart they waited out the 30 s ack wait.
func TestSIGINTHandsBackQueuedDeliveries(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	got := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		got[r.Header.Get("Webhook-Id")]++
		mu.Unlock()
	}))
	defer sink.Close()
	delivered := func() (distinct, total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range got {
			distinct++
			total += n
		}
		return distinct, total
	}
	dir := t.TempDir()
	const key = "sigint-test-key-0123456789"
	cfgPath := writeForwardCaddyfile(t, dir, 9382, "per_destination 1", "slow", key, sink.URL)
	payload, _ := os.ReadFile("../examples/easylife/groupcreated.json")
	cmd, _ := start(t, bin, dir, cfgPath, "http://127.0.0.1:9382/")
	const webhooks = 40
	for i := range webhooks {
		resp, err := http.Post("http://127.0.0.1:9382/hooks/slow/"+key, "application/json", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("webhook %d: %d", i, resp.StatusCode)
		}
	}
	for begin := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := delivered(); n >= 3 {
			break
		}
		if time.Since(begin) > 30*time.Second {
			t.Fatal("no deliveries before the stop")
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the gateway did not stop cleanly: %v", err)
	}
	before, _ := delivered()
	if before >= webhooks {
		t.Fatalf("all %d delivered before the stop: the test proves nothing", before)
	}

	restarted := time.Now()
	start(t, bin, dir, cfgPath, "http://127.0.0.1:9382/")
	// 40 deliveries one at a time take 4 s; the ack wait is 30 s.
	for {
		n, _ := delivered()
		if n == webhooks {
			break
		}
		if time.Since(restarted) > 20*time.Second {
			t.Fatalf("%d of %d delivered 20 s after the restart (%d before the stop): the rest waited for the ack wait", n, webhooks, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d delivered before the stop, the other %d within %v of the restart", before, webhooks-before, time.Since(restarted).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // anything sent twice would arrive meanwhile
	if _, total := delivered(); total != webhooks {
		t.Errorf("%d requests for %d webhooks: a delivery was sent twice", total, webhooks)
	}
}

// TestBufferedLogWrittenAtExit: with the default log going through
// `output buffered` (held for a minute), the lines still held when the
// process is stopped with SIGINT are written, and so are the lines it logs
// as it stops.
func TestBufferedLogWrittenAtExit(t *testing.T) {
	bin := buildBinary(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "gateway.log")
	const key = "buffered-log-test-key-0123456789"
	cfg := fmt.Sprintf(`{
	admin off
	log {
		output buffered {
			writer file %s
			flush_interval 1m
		}
	}
	hookgate {
		storage_dir %s
		allow_targets 127.0.0.1/32
	}
}
:9381 {
	hookgate_ingress /hooks/* {
		workflow logged {
			sample %s
			key %s
			forward %s/in
		}
	}
	respond "up" 200
}
`, logFile, filepath.Join(dir, "data"), mustAbs(t, "../examples/easylife/groupcreated.json"), key, target.URL)
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, _ := start(t, bin, dir, cfgPath, "http://127.0.0.1:9381/")
	payload, _ := os.ReadFile("../examples/easylife/groupcreated.json")
	if status, body := do(t, "POST", "http://127.0.0.1:9381/hooks/logged/"+key, "", payload); status != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", status, body)
	}
	time.Sleep(300 * time.Millisecond) // delivered meanwhile, on loopback
	held, _ := os.ReadFile(logFile)
	if strings.Contains(string(held), "event accepted") {
		t.Fatalf("the line was written before the flush interval: nothing is buffered\n%s", held)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the process did not stop within 30 s of SIGINT")
	}
	written, _ := os.ReadFile(logFile)
	for _, msg := range []string{`"msg":"event accepted"`, `"msg":"delivery succeeded"`, `"msg":"shutdown complete"`} {
		if !strings.Contains(string(written), msg) {
			t.Errorf("%s is not in the log written at exit:\n%s", msg, written)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestValidate: `caddy validate` reports a bad workflow with its file, line
// and field (a filter that does not compile, or whose result is not boolean),
// and validating or adapting a good configuration starts and writes nothing
// (no engine: its storage directory is not even created; no API token file).
func TestValidate(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	sample := mustAbs(t, "../examples/easylife/groupcreated.json")
	bad := filepath.Join(dir, "bad.Caddyfile")
	if err := os.WriteFile(bad, []byte(fmt.Sprintf(":9381 {\n\thookgate_ingress /hooks/* {\n\t\tworkflow w {\n\t\t\tsample %s\n\t\t\tfilter `body.eventType ==`\n\t\t}\n\t}\n}\n", sample)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "validate", "--config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad filter:\n%s", out)
	}
	if !strings.Contains(string(out), `workflow \"w\": filter \"body.eventType ==\"`) || !strings.Contains(string(out), "bad.Caddyfile:5") {
		t.Errorf("validate output lacks the field and file:line:\n%s", out)
	}

	// Issue #8 (7): a filter that is not boolean fails validation.
	nonBool := filepath.Join(dir, "nonbool.Caddyfile")
	if err := os.WriteFile(nonBool, []byte(fmt.Sprintf(":9381 {\n\thookgate_ingress /hooks/* {\n\t\tworkflow w {\n\t\t\tsample %s\n\t\t\tfilter `body.eventType`\n\t\t}\n\t}\n}\n", sample)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "validate", "--config", nonBool).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a non-boolean filter:\n%s", out)
	}
	if !strings.Contains(string(out), "the result must be boolean") || !strings.Contains(string(out), "nonbool.Caddyfile:5") {
		t.Errorf("validate output lacks the reason and file:line:\n%s", out)
	}

	store := filepath.Join(dir, "store")
	tokenFile := filepath.Join(dir, "tokens", "api-token")
	good := filepath.Join(dir, "good.Caddyfile")
	if err := os.WriteFile(good, []byte(fmt.Sprintf("{\n\thookgate {\n\t\tstorage_dir %s\n\t}\n}\n:9381 {\n\thookgate_ingress /hooks/* {\n\t\tworkflow w {\n\t\t\tsample %s\n\t\t}\n\t}\n\thookgate_api /api/* {\n\t\ttoken_file %s\n\t}\n}\n", store, sample, tokenFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", "--config", good).CombinedOutput(); err != nil {
		t.Fatalf("validate refused a good configuration: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "adapt", "--config", good).CombinedOutput(); err != nil {
		t.Fatalf("adapt refused a good configuration: %v\n%s", err, out)
	}
	if _, err := os.Stat(store); err == nil {
		t.Error("validate opened the engine: the storage directory exists")
	}
	// Issue #8: validate and adapt write nothing; the token file is made
	// when the app starts.
	if _, err := os.Stat(filepath.Dir(tokenFile)); err == nil {
		t.Error("validate or adapt created the API token file (or its directory)")
	}
}
