package module

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// exampleCaddyfiles lists the root Caddyfile and every examples/*/Caddyfile,
// relative to the repository root (the working directory of
// `go run ./caddy run --config …`).
func exampleCaddyfiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("examples/*/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"activate", "orangelogic", "orchestry"} {
		if !slices.Contains(files, "examples/"+want+"/Caddyfile") {
			t.Errorf("examples/%s/Caddyfile is missing", want)
		}
	}
	return append([]string{"Caddyfile"}, files...)
}

// TestExamplesAdapt: the root Caddyfile and every example adapt, from the
// repository root, without error or warning (an unformatted Caddyfile is a
// warning: run `caddy fmt --overwrite`).
func TestExamplesAdapt(t *testing.T) {
	t.Chdir("..")
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, f := range exampleCaddyfiles(t) {
		t.Run(f, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := adapter.Adapt(src, map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, w := range warnings {
				t.Errorf("%s:%d: %s", w.File, w.Line, w.Message)
			}
			var cfg struct {
				Apps map[string]json.RawMessage `json:"apps"`
			}
			if err := json.Unmarshal(out, &cfg); err != nil || cfg.Apps["hookgate"] == nil || cfg.Apps["http"] == nil {
				t.Fatalf("%s: no hookgate and http apps in %s (%v)", f, out, err)
			}
		})
	}
}

// TestExamplesShareNothing: the root Caddyfile and the examples run side by
// side: no two of them listen on the same address or admin endpoint, or
// keep their storage or API token in the same place.
func TestExamplesShareNothing(t *testing.T) {
	t.Chdir("..")
	adapter := caddyconfig.GetAdapter("caddyfile")
	owner := map[string]string{} // "kind value" -> Caddyfile
	for _, f := range exampleCaddyfiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := adapter.Adapt(src, map[string]any{"filename": f})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var cfg struct {
			Admin struct {
				Listen string `json:"listen"`
			} `json:"admin"`
			Apps struct {
				Hookgate struct {
					StorageDir string `json:"storage_dir"`
				} `json:"hookgate"`
				HTTP struct {
					Servers map[string]struct {
						Listen []string `json:"listen"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		claims := []string{
			"admin " + cmp.Or(cfg.Admin.Listen, "localhost:2019"),
			"storage " + cmp.Or(cfg.Apps.Hookgate.StorageDir, "{caddy data dir}/hookgate"),
		}
		for _, srv := range cfg.Apps.HTTP.Servers {
			for _, l := range srv.Listen {
				claims = append(claims, "listen "+l)
			}
		}
		tokens := regexp.MustCompile(`"token_files":\["([^"]+)"`).FindAllSubmatch(out, -1)
		if len(tokens) == 0 {
			t.Errorf("%s: no token file", f)
		}
		for _, m := range tokens {
			claims = append(claims, "token file "+string(m[1]))
		}
		for _, c := range claims {
			if other, ok := owner[c]; ok && other != f {
				t.Errorf("%s and %s share %s", other, f, c)
			}
			owner[c] = f
		}
	}
}

// Secrets the outgoing examples read from the environment.
const (
	exampleWhsec           = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	exampleOrchestrySecret = "s3cr3t-from-orchestry-setup"
	// exampleOrangeLogicSecret is the secret of examples/orangelogic/README.md.
	exampleOrangeLogicSecret = "ol-shared-secret-0123456789"
)

// exampleEvent is an example event file: the publish request body.
type exampleEvent struct {
	ID     string          `json:"id"`
	Topic  string          `json:"topic"`
	Tenant string          `json:"tenant"`
	User   string          `json:"user"`
	Time   string          `json:"time"`
	Data   json.RawMessage `json:"data"`
}

// loadExampleEvents reads the event files of an example folder (JSON files
// with a topic), by file name.
func loadExampleEvents(t *testing.T, dir string) map[string]exampleEvent {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	out := map[string]exampleEvent{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev exampleEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if ev.Topic != "" {
			out[filepath.Base(f)] = ev
		}
	}
	return out
}

// name2port is each example's place: it listens on 8080+n, its stand-in
// receiver on 8090+n and its admin endpoint on localhost:2020+n.
var name2port = map[string]int{"easylife": 1, "phrase": 2, "orangelogic": 3, "orchestry": 4, "activate": 5}

// startExample loads an example Caddyfile into the in-process Caddy with the
// test's admin address and ports, its own storage and token file, and the
// subscriber URL pointing at sink.
func startExample(t *testing.T, name string, s *sink) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("examples", name, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKGATE_TOKEN_FILE", tokenFile)
	cfg := string(src)
	n := name2port[name]
	for _, r := range []struct{ old, new string }{
		{fmt.Sprintf("\tadmin localhost:%d\n", 2020+n), fmt.Sprintf("\tadmin %s\n\thttp_port %d\n\thttps_port %d\n\tskip_install_trust\n\tgrace_period 1s\n", testAdminAddr, testHTTPPort, testHTTPSPort)},
		{fmt.Sprintf("storage_dir {$HOOKGATE_STORAGE_DIR:.hookgate/%s/data}", name), "storage_dir " + filepath.Join(dir, "data")},
		{fmt.Sprintf("\n:%d {\n", 8080+n), fmt.Sprintf("\n:%d {\n", testHTTPPort)},
		{fmt.Sprintf("\n:%d {\n", 8090+n), fmt.Sprintf("\n:%d {\n", testHTTPPort+1)},
		{fmt.Sprintf("http://127.0.0.1:%d", 8090+n), s.URL},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("examples/%s/Caddyfile: %q not found: the test's rewriting needs updating", name, r.old)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	tc := newTester(t)
	tc.InitServer(cfg, "caddyfile")
	http.DefaultClient.CloseIdleConnections() // none to the previous configuration's servers
	if t.Failed() {
		t.FailNow()
	}
}

// publishExample publishes an example event file as is and returns its id.
func publishExample(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	status, body := apiCall(t, "POST", "/events", b)
	if status != http.StatusAccepted || body["status"] != "accepted" {
		t.Fatalf("publishing %s: %d %v", file, status, body)
	}
	return body["id"].(string)
}

// TestExamplesOutgoing runs the Orange Logic, Orchestry and ACTIVATE examples
// as configured (only the ports, storage, token file and subscriber URL are
// changed), publishes their example events as the READMEs do, and checks
// what the subscriber receives.
func TestExamplesOutgoing(t *testing.T) {
	t.Chdir("..")

	t.Run("orangelogic", func(t *testing.T) {
		t.Setenv("ORANGELOGIC_WEBHOOK_SECRET", exampleOrangeLogicSecret)
		s := newSink(t)
		startExample(t, "orangelogic", s)
		dir := filepath.Join("examples", "orangelogic")
		events := loadExampleEvents(t, dir)
		if len(events) != 2 {
			t.Fatalf("example events: %v", events)
		}
		ids := map[string]string{}
		for file := range events {
			ids[file] = publishExample(t, dir, file)
		}
		if ids["document-deleted.json"] != "773bdd63-29be-4e77-8f39-fb0b572a7a88" {
			t.Errorf("the example's event id was not kept: %v", ids)
		}
		// Publishing it again is a no-op.
		b, _ := os.ReadFile(filepath.Join(dir, "document-deleted.json"))
		if status, body := apiCall(t, "POST", "/events", b); status != http.StatusAccepted || body["status"] != "duplicate" {
			t.Errorf("republish: %d %v", status, body)
		}
		// The topic schema refuses data without RecordID.
		if status, _ := apiCall(t, "POST", "/events", map[string]any{"topic": "asset.updated", "data": map[string]any{}}); status != http.StatusUnprocessableEntity {
			t.Errorf("data without RecordID: %d", status)
		}
		// The include predicate keeps other tenants out.
		apiCall(t, "POST", "/events", map[string]any{"topic": "asset.updated", "tenant": "XX9", "data": map[string]any{"RecordID": "R"}})

		got := waitCount(t, s, 2)
		for file, ev := range events {
			var r *recorded
			for i := range got {
				if got[i].Header.Get("Webhook-Id") == ids[file] {
					r = &got[i]
				}
			}
			if r == nil {
				t.Fatalf("%s was not delivered", file)
			}
			var data any
			_ = json.Unmarshal(ev.Data, &data)
			occurred := eventTime(t, ids[file])
			if ev.Time != "" && occurred != ev.Time {
				t.Errorf("%s: the event's time is %s, want %s as published", file, occurred, ev.Time)
			}
			want := mustJSON(map[string]any{"EventId": ids[file], "Topic": ev.Topic, "EventDateUtc": occurred,
				"Data": data, "Tenant": ev.Tenant, "UserId": ev.User})
			if r.Path != "/orangelogic" || !jsonEqual(r.Body, want) {
				t.Errorf("%s: %s\n got %s\nwant %s", file, r.Path, r.Body, want)
			}
			if r.Header.Get("X-Customer-Context") != "mangovations" || r.Header.Get("Traceparent") == "" {
				t.Errorf("%s: headers %v", file, r.Header)
			}
			// "This signature is included in the header as x-ol-signature."
			mac := hmac.New(sha256.New, []byte(exampleOrangeLogicSecret))
			mac.Write(r.Body)
			if want := hex.EncodeToString(mac.Sum(nil)); r.Header.Get("x-ol-signature") != want {
				t.Errorf("%s: x-ol-signature %q, want the hex HMAC-SHA256 of the body %q", file, r.Header.Get("x-ol-signature"), want)
			}
			if r.Header.Get("Webhook-Signature") != "" {
				t.Errorf("%s: a Standard Webhooks signature too: %v", file, r.Header)
			}
		}
	})

	t.Run("orchestry", func(t *testing.T) {
		t.Setenv("ORCHESTRY_WEBHOOK_SECRET", exampleOrchestrySecret)
		s := newSink(t)
		startExample(t, "orchestry", s)
		dir := filepath.Join("examples", "orchestry")
		events := loadExampleEvents(t, dir)
		completed := publishExample(t, dir, "provisioning-completed.json")
		publishExample(t, dir, "provisioning-requested.json") // no subscription
		r := waitCount(t, s, 1)[0]
		want := map[string]any{"Secret": exampleOrchestrySecret}
		var data map[string]any
		_ = json.Unmarshal(events["provisioning-completed.json"].Data, &data)
		for k, v := range data {
			want[k] = v
		}
		if r.Path != "/orchestry" || r.Header.Get("Webhook-Id") != completed || !jsonEqual(r.Body, mustJSON(want)) {
			t.Errorf("%s %s:\n got %s\nwant %s", r.Path, r.Header.Get("Webhook-Id"), r.Body, mustJSON(want))
		}
		if r.Header.Get("X-Orchestry-Secret") != exampleOrchestrySecret {
			t.Errorf("secret header: %v", r.Header)
		}
		if err := verify(exampleOrchestrySecret, r); err != nil {
			t.Errorf("signature: %v", err)
		}
		// GET /topics lists Orchestry's five events, and hookgate's
		// built-in one.
		_, list := apiCall(t, "GET", "/topics", nil)
		if topics, _ := list["topics"].([]any); len(topics) != 5+1 {
			t.Errorf("topics: %v", list)
		}
	})

	t.Run("activate", func(t *testing.T) {
		t.Setenv("ACTIVATE_WEBHOOK_SECRET", exampleWhsec)
		s := newSink(t)
		startExample(t, "activate", s)
		dir := filepath.Join("examples", "activate")
		// The bodies of the ACTIVATE documentation; the third webhook is
		// named group-removals here (subscription names are unique).
		want := map[string]struct{ path, body string }{
			"user-created.json": {"/activate/users", `{"type": "USER_CREATED",
				"webhook": {"id": "66ec434e84b4103f670cb617", "organization": "parallelworks", "name": "demo"},
				"payload": {"username": "demo", "email": "demo@parallelworks.com", "userId": "66ec445884b4103f670d0c86",
					"organization": "parallelworks", "remainingSeats": 5}}`},
			"user-disabled.json": {"/activate/users", `{"type": "USER_DISABLED",
				"webhook": {"id": "66ec41b884b4103f670c5ee5", "organization": "parallelworks", "name": "test"},
				"payload": {"username": "demo", "email": "demo@parallelworks.com", "userId": "653c787c8e048caa7cb4e554",
					"organization": "parallelworks"}}`},
			"user-removed-from-group.json": {"/activate/groups", `{"type": "USER_REMOVED_FROM_GROUP",
				"webhook": {"id": "66ec439584b4103f670cd3ae", "organization": "parallelworks", "name": "group-removals"},
				"payload": {"username": "demo", "email": "demo@parallelworks.com", "userId": "653c787c8e048caa7cb4e554",
					"organization": "parallelworks", "groupName": "Demo-Group"}}`},
		}
		if n := len(loadExampleEvents(t, dir)); n != len(want) {
			t.Fatalf("%d example events, want %d", n, len(want))
		}
		ids := map[string]string{}
		for file := range want {
			ids[publishExample(t, dir, file)] = file
		}
		got := waitCount(t, s, len(want))
		for _, r := range got {
			file := ids[r.Header.Get("Webhook-Id")]
			w, ok := want[file]
			if !ok {
				t.Fatalf("unexpected delivery %v", r.Header)
			}
			if r.Path != w.path || !jsonEqual(r.Body, []byte(w.body)) {
				t.Errorf("%s: %s\n got %s\nwant %s", file, r.Path, r.Body, w.body)
			}
			if err := verify(exampleWhsec, r); err != nil {
				t.Errorf("%s: signature: %v", file, err)
			}
		}
	})
}

// TestExamplesIncomingEasyLife runs examples/easylife as configured, posts
// the five payloads of EasyLife's documentation as its README does, and
// checks the seed's rule ("A status 200 OK is expected with no body") and
// that only the Team and the SharePoint site reach the app.
func TestExamplesIncomingEasyLife(t *testing.T) {
	t.Chdir("..")
	s := newSink(t)
	startExample(t, "easylife", s)
	status, body := apiCall(t, "POST", "/workflows/easylife-provisioning/regenerate", nil)
	url, _ := body["url"].(string)
	if status != http.StatusOK || url == "" {
		t.Fatalf("regenerate: %d %v", status, body)
	}
	for _, name := range easylifeNames {
		b, err := os.ReadFile(filepath.Join("examples", "easylife", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		status, _, answer := rawCall(t, "POST", url, b)
		if status != http.StatusOK || len(answer) != 0 {
			t.Errorf("%s: %d %q, want 200 OK with no body", name, status, answer)
		}
	}
	got := waitCount(t, s, 2)
	time.Sleep(300 * time.Millisecond) // the others are filtered: nothing more arrives
	if got = s.received(); len(got) != 2 {
		t.Fatalf("%d deliveries, want the Team and the SharePoint site", len(got))
	}
	for _, r := range got {
		var p struct {
			EventType string `json:"eventType"`
			Group     struct {
				Metadata struct {
					AdditionalData map[string]any `json:"additionalData"`
				} `json:"metadata"`
			} `json:"group"`
		}
		_ = json.Unmarshal(r.Body, &p)
		if r.Path != "/provisioned" || (p.EventType != "groupcreated" && p.EventType != "sharepointcreated") || p.Group.Metadata.AdditionalData["yUrl"] != nil {
			t.Errorf("delivered %s %s", r.Path, r.Body)
		}
	}
}
