package module

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// End-to-end tests of the web console in a real browser: headless Chromium
// from the system packages (no browser is downloaded), driven with chromedp,
// against the real Caddy started from a Caddyfile. The browser only ever
// connects to 127.0.0.1.

const chromiumPath = "/usr/bin/chromium"

// consoleURL is the page: the management API prefix's root.
var consoleURL = base + "/api/hookgate/"

// browser is a headless Chromium tab that records the page's console
// errors, uncaught exceptions and Content-Security-Policy violations.
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	bad []string
}

// newBrowser starts Chromium, or skips the test when it is not installed
// and CI is not set (in CI, .ci/run installs it and the test must run).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not installed (apt-get install chromium); CI runs this test", chromiumPath)
		}
		t.Fatalf("CI is set but %s is missing: %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	// The first Run starts the browser; it must not have a timeout.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		// Violations of the CSP, reported by the page itself to a listener
		// installed before any of its scripts runs.
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`})
		return err
	})); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Type == chromedp.ConsoleWarning && m.Source == "security" {
				b.mu.Lock()
				b.bad = append(b.bad, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs actions with a time limit.
func (b *browser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshotOnFailure(t, what)
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs an action that returns a value.
func value[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshotOnFailure keeps what the page showed when a step failed, in
// the test's log directory.
func (b *browser) screenshotOnFailure(t *testing.T, what string) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(os.TempDir(), "hookgate-console-failure.png")
		if os.WriteFile(p, png, 0o600) == nil {
			t.Logf("the page at %q: %s", what, p)
		}
	}
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('main').innerText`)); err == nil {
		t.Logf("the page's text:\n%s", html)
	}
}

// problems returns the console errors and CSP violations so far.
func (b *browser) problems(t *testing.T) []string {
	t.Helper()
	violations := value(t, b, "CSP violations", chromedp.Evaluate[[]string](`window.__csp || []`))
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]string(nil), b.bad...)
	for _, v := range violations {
		out = append(out, "CSP violation: "+v)
	}
	return out
}

// signIn opens the console and signs in with the token.
func (b *browser) signIn(t *testing.T, token string) {
	t.Helper()
	b.do(t, "sign in",
		chromedp.Navigate(consoleURL),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#live-state")),
	)
}

// screenshot saves the page as docs/console-<name>.png when
// HOOKGATE_SCREENSHOTS=1 (the README shows them).
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("HOOKGATE_SCREENSHOTS") != "1" {
		return
	}
	time.Sleep(300 * time.Millisecond) // let the last answer render
	png := value(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join("..", "docs", "console-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// consoleSite is the Caddyfile site of the console tests: an ingress for
// API-made workflows and the API.
var consoleSite = fmt.Sprintf(`
	hookgate_ingress /hooks/*
	hookgate_api /api/hookgate/* {
		token %s
	}
	respond "app" 200
`, testToken)

// TestConsoleEndToEnd: sign in, see a webhook arrive live, open it and its
// attempts, retry a failed delivery and see the new attempt, regenerate a
// workflow's key (shown once; the old key is then refused), disable a
// subscription, rotate its secret and see its circuit state.
func TestConsoleEndToEnd(t *testing.T) {
	b := newBrowser(t)
	flaky := newSink(t, 500, 500) // two failed attempts, then 200
	subs := newSink(t)
	startCaddy(t, t.TempDir(), "", consoleSite)

	if status, body := apiCall(t, "POST", "/workflows", map[string]any{
		"id": "orders", "name": "Orders", "description": "Orders from the shop",
		"sample":  map[string]any{"order": 1, "customer": "ZZ1"},
		"filter":  "body.order > 0",
		"targets": []map[string]any{{"id": "erp", "url": flaky.URL + "/erp", "retry_schedule": []string{"100ms"}, "rate_limit": "50/s"}},
	}); status != http.StatusCreated {
		t.Fatalf("create workflow: %d %v", status, body)
	}
	_, wf := apiCall(t, "POST", "/workflows/orders/regenerate", map[string]any{})
	oldKey, _ := wf["key"].(string)
	if status, body := apiCall(t, "PUT", "/topics/order.shipped", map[string]any{"description": "An order left the warehouse"}); status != http.StatusCreated {
		t.Fatalf("create topic: %d %v", status, body)
	}
	sub := createSubscription(t, map[string]any{"name": "warehouse", "topics": []string{"order.*"}, "url": subs.URL + "/in", "rate_limit": "10/s"})
	subID := sub["id"].(string)
	oldSecret := sub["secret"].(string)

	// Sign in: the live list is shown, empty.
	b.signIn(t, testToken)
	b.do(t, "the empty list", chromedp.WaitVisible(chromedp.CSS("#deliveries td.empty")))

	// A webhook and an event arrive after the page is open: they appear
	// without a reload, the webhook's delivery failed (two 500s).
	if status, body := call(t, "POST", base+"/hooks/orders/"+oldKey, map[string]any{"order": 7, "customer": "ZZ1"}); status != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", status, body)
	}
	evID := mustPublish(t, map[string]any{"topic": "order.shipped", "data": map[string]any{"order": 7}})
	b.do(t, "the deliveries appear live",
		chromedp.WaitVisible(chromedp.CSS(`#deliveries tr.row-failed[data-delivery*="orders"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#deliveries tr.row-succeeded[data-event="`+evID+`"]`)),
	)
	b.screenshot(t, "events")

	// Open the failed webhook: its body and both attempts, with the 500s.
	b.do(t, "open the event",
		chromedp.Click(chromedp.CSS(`#deliveries tr.row-failed a.event-link`)),
		chromedp.WaitVisible(chromedp.CSS(`section.delivery tr.attempt[data-attempt="2"]`)),
	)
	text := value(t, b, "the event page", chromedp.Text(chromedp.CSS("#event")))
	for _, want := range []string{`"customer": "ZZ1"`, "500", `{"ok":true}`, "failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("the event page lacks %q:\n%s", want, text)
		}
	}
	// Each attempt shows the headers it sent, from the delivery log.
	sent := value(t, b, "an attempt's request headers", chromedp.TextContent(chromedp.CSS(`section.delivery tr.attempt[data-attempt="1"] details.sent-headers`)))
	for _, want := range []string{"Webhook-Id", "Traceparent", "User-Agent", "Content-Type"} {
		if !strings.Contains(sent, want) {
			t.Errorf("the attempt's request headers lack %s: %q", want, sent)
		}
	}
	b.screenshot(t, "event")

	// Retry the failed delivery: a third attempt, which succeeds.
	b.do(t, "retry",
		chromedp.Click(chromedp.CSS(`section.delivery button[data-retry]`)),
		chromedp.WaitVisible(chromedp.CSS(`section.delivery tr.attempt[data-attempt="3"]`)),
		chromedp.WaitVisible(chromedp.CSS(`section.delivery .badge.succeeded`)),
	)
	if n := len(flaky.received()); n != 3 {
		t.Errorf("the target received %d requests, want 3", n)
	}

	// The workflow's page; regenerate its key: the new one is shown once
	// and works, the old one is refused.
	b.do(t, "the workflow",
		chromedp.Navigate(consoleURL+"#/workflows"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workflow="orders"] a`)),
		chromedp.Click(chromedp.CSS(`tr[data-workflow="orders"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#regenerate`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-target="erp"] [data-circuit="closed"]`)),
		// Its chart of the last hour: three attempts, two failed.
		chromedp.WaitVisible(chromedp.CSS(`tr[data-target="erp"] figure.chart[data-attempts="3"][data-failures="2"]`)),
	)
	b.do(t, "the test panel",
		chromedp.SendKeys(chromedp.CSS("#test-payload"), `{"order": 0, "customer": "ZZ2"}`),
		chromedp.Click(chromedp.CSS("#test-run")),
		chromedp.WaitVisible(chromedp.CSS(`#test-result [data-outcome="filtered"]`)),
	)
	b.do(t, "regenerate the key",
		chromedp.Click(chromedp.CSS("#regenerate")),
		chromedp.Click(chromedp.CSS(`button[data-confirm="regenerate"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[data-secret="New key"]`)),
	)
	b.screenshot(t, "workflow")
	newKey := value(t, b, "the new key", chromedp.Value(chromedp.CSS(`input[data-secret="New key"]`)))
	if newKey == "" || newKey == oldKey {
		t.Fatalf("new key %q (old %q)", newKey, oldKey)
	}
	waitFor(t, "the old key refused", 5*time.Second, func() bool {
		status, _ := call(t, "POST", base+"/hooks/orders/"+oldKey, map[string]any{"order": 8, "customer": "ZZ1"})
		return status == http.StatusUnauthorized
	})
	if status, body := call(t, "POST", base+"/hooks/orders/"+newKey, map[string]any{"order": 9, "customer": "ZZ1"}); status != http.StatusAccepted {
		t.Fatalf("the new key: %d %v", status, body)
	}
	// Shown once: back on the page, the key is gone.
	b.do(t, "the workflow again",
		chromedp.Navigate(consoleURL+"#/workflows"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workflow="orders"] a`)),
		chromedp.Navigate(consoleURL+"#/workflows/orders"),
		chromedp.WaitVisible(chromedp.CSS(`#regenerate`)),
	)
	if n := value(t, b, "secrets shown", chromedp.Evaluate[int](`document.querySelectorAll('[data-secret]').length`)); n != 0 {
		t.Errorf("%d secrets still shown", n)
	}

	// Subscriptions: its circuit is closed; disable it; rotate its secret.
	row := `tr[data-subscription="` + subID + `"]`
	b.do(t, "the subscriptions",
		chromedp.Navigate(consoleURL+"#/subscriptions"),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-circuit="closed"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` figure.chart[data-attempts="1"]`)),
	)
	b.screenshot(t, "subscriptions")
	b.do(t, "disable the subscription",
		chromedp.Click(chromedp.CSS(row+` input[data-toggle]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-subscription="`+subID+`"][data-enabled="false"]`)),
	)
	if _, body := apiCall(t, "GET", "/subscriptions/"+subID, nil); body["enabled"] != false {
		t.Errorf("the subscription is still enabled: %v", body)
	}
	b.do(t, "rotate the secret",
		chromedp.Click(chromedp.CSS(row+` button[data-rotate]`)),
		chromedp.Click(chromedp.CSS(row+` button[data-confirm="rotate"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[data-secret^="New secret"]`)),
	)
	secret := value(t, b, "the new secret", chromedp.Value(chromedp.CSS(`input[data-secret^="New secret"]`)))
	if !strings.HasPrefix(secret, "whsec_") || secret == oldSecret {
		t.Errorf("new secret %q", secret)
	}
	b.do(t, "topics",
		chromedp.Navigate(consoleURL+"#/topics"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="order.shipped"]`)),
	)

	if p := b.problems(t); len(p) > 0 {
		t.Errorf("console errors or CSP violations:\n%s", strings.Join(p, "\n"))
	}
}

// TestConsoleCSP: the page and its assets are served without a token with
// the strict CSP and the other security headers, the API stays closed
// without one, and every view works under the CSP: no violation, no console
// error, nothing loaded from elsewhere.
func TestConsoleCSP(t *testing.T) {
	startCaddy(t, t.TempDir(), "", consoleSite)
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	for _, p := range []string{"", "console/app.js", "console/style.css", "console/ui.js"} {
		status, h, body := rawCall(t, "GET", consoleURL+p, nil)
		if status != http.StatusOK || len(body) == 0 {
			t.Fatalf("%s: %d", p, status)
		}
		if h.Get("Content-Security-Policy") != csp || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", p, h)
		}
	}
	if status, _, _ := rawCall(t, "GET", consoleURL+"console/nope.js", nil); status != http.StatusNotFound {
		t.Errorf("unknown asset: %d", status)
	}
	if status, _ := call(t, "GET", base+"/api/hookgate/workflows", nil); status != http.StatusUnauthorized {
		t.Errorf("the API without a token: %d", status)
	}

	b := newBrowser(t)
	// A wrong token is refused on the sign-in form.
	b.do(t, "a wrong token",
		chromedp.Navigate(consoleURL),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")),
	)
	b.screenshot(t, "signin")
	// The browser logs the refused call (401) as an error: expected here.
	b.mu.Lock()
	b.bad = nil
	b.mu.Unlock()
	b.do(t, "reload", chromedp.Navigate(consoleURL), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.signIn(t, testToken)
	for _, view := range []string{"workflows", "subscriptions", "topics", "events"} {
		b.do(t, view, chromedp.Navigate(consoleURL+"#/"+view), chromedp.WaitVisible(chromedp.CSS(`[data-nav="`+view+`"].active`)),
			chromedp.WaitNotPresent(chromedp.CSS(`#main .error`)))
	}
	// The token is in the tab's sessionStorage only.
	if got := value(t, b, "storage", chromedp.Evaluate[string](`sessionStorage.getItem('hookgate.token') + '|' + localStorage.length + '|' + document.cookie`)); got != testToken+"|0|" {
		t.Errorf("storage: %q", got)
	}
	if p := b.problems(t); len(p) > 0 {
		t.Errorf("console errors or CSP violations:\n%s", strings.Join(p, "\n"))
	}
	// An inline script is refused by the CSP, and reported: the check
	// itself works.
	_ = value(t, b, "inject", chromedp.Evaluate[bool](`(() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; document.body.appendChild(s); return true; })()`))
	waitFor(t, "the violation reported", 5*time.Second, func() bool { return len(b.problems(t)) > 0 })
	if ran := value(t, b, "ran", chromedp.Evaluate[bool](`window.__ran === 1`)); ran {
		t.Error("an inline script ran under the CSP")
	}
	for _, p := range b.problems(t) {
		if !strings.Contains(p, "script-src") {
			t.Errorf("not the injected script's violation: %s", p)
		}
	}
}
