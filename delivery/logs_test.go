package delivery

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/registry"
)

// TestLogLines: one line per accepted event and per failed or final
// attempt, with ids, status, attempt and duration, and no key or secret.
func TestLogLines(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.DebugLevel)
	e.pipe = New(e.eng, e.reg, testGuard().Client(), zap.New(core), Options{})
	if err := e.pipe.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pipe.Stop)

	const (
		subSecret = "sub-secret-value-0123"
		hdrSecret = "header-secret-value-4567"
		urlSecret = "url-secret-value-89ab"
	)
	failing := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	e.subscribe(registry.Subscription{
		ID: "flaky", Topics: []string{"user.created"}, URL: failing.URL + "/hook?code=" + urlSecret,
		Secret: subSecret, Headers: map[string]string{"X-Api-Key": hdrSecret},
		MaxAttempts: 2, RetrySchedule: []registry.Duration{registry.Duration(20 * time.Millisecond)},
	})
	e.subscribe(registry.Subscription{
		ID: "down", Topics: []string{"user.created"}, URL: "http://127.0.0.1:1/hook?code=" + urlSecret,
		Secret: subSecret, MaxAttempts: 1,
	})
	ok := newSink(t, nil)
	_, key, err := e.reg.CreateWorkflow(e.ctx, registry.Workflow{ID: "orders", Targets: []registry.Target{{URL: ok.URL, Secret: subSecret}}})
	if err != nil {
		t.Fatal(err)
	}

	e.publish(&Event{ID: "signup-1", Topic: "user.created", Data: []byte(`{"password":"not-logged"}`)})
	e.publish(&Event{ID: "signup-1", Topic: "user.created", Data: []byte(`{}`)}) // duplicate: no line
	wf := &Event{Workflow: "orders", Data: []byte(`{}`)}
	e.publish(wf)
	e.waitRecord("flaky.signup-1", 10*time.Second, statusIs(StatusFailed))
	e.waitRecord("down.signup-1", 10*time.Second, statusIs(StatusFailed))
	dests, _ := e.reg.Workflow("orders")
	e.waitRecord(dests.Targets[0].ID+"."+wf.ID, 10*time.Second, statusIs(StatusSucceeded))

	type want struct {
		level  zapcore.Level
		msg    string
		fields map[string]any // exact values; nil: present with any value
	}
	for _, tc := range []struct {
		name  string
		count int
		want  want
	}{
		{"accepted topic event", 1, want{zapcore.InfoLevel, "event accepted", map[string]any{"event": "signup-1", "topic": "user.created", "destinations": int64(2)}}},
		{"accepted workflow event", 1, want{zapcore.InfoLevel, "event accepted", map[string]any{"event": wf.ID, "workflow": "orders", "destinations": int64(1)}}},
		{"attempt to retry", 1, want{zapcore.WarnLevel, "delivery attempt failed", map[string]any{
			"event": "signup-1", "delivery": "flaky.signup-1", "subscription": "flaky", "destination": "flaky",
			"status": int64(500), "attempt": int64(1), "duration": nil, "error": "Internal Server Error"}}},
		{"final failure", 1, want{zapcore.ErrorLevel, "delivery failed", map[string]any{
			"event": "signup-1", "delivery": "flaky.signup-1", "subscription": "flaky",
			"status": int64(500), "attempt": int64(2), "duration": nil, "reason": "gave up after 2 attempts"}}},
		{"transport error", 1, want{zapcore.ErrorLevel, "delivery failed", map[string]any{
			"event": "signup-1", "delivery": "down.signup-1", "subscription": "down", "attempt": int64(1), "error": nil}}},
		{"success", 1, want{zapcore.InfoLevel, "delivery succeeded", map[string]any{
			"event": wf.ID, "workflow": "orders", "status": int64(200), "attempt": int64(1), "duration": nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
		entries:
			for _, en := range logs.FilterMessage(tc.want.msg).All() {
				if en.Level != tc.want.level {
					continue
				}
				got := en.ContextMap()
				for k, v := range tc.want.fields {
					gv, ok := got[k]
					if !ok {
						continue entries
					}
					if d, isDur := gv.(time.Duration); isDur && v == nil && d > 0 {
						continue
					}
					if v != nil && gv != v {
						continue entries
					}
				}
				n++
			}
			if n != tc.count {
				t.Errorf("%d lines %q at %v with %v, want %d; all lines:\n%v", n, tc.want.msg, tc.want.level, tc.want.fields, tc.count, logs.All())
			}
		})
	}
	for _, en := range logs.All() {
		if en.Message == "delivery failed" && en.ContextMap()["delivery"] == "down.signup-1" {
			if e, _ := en.ContextMap()["error"].(string); !strings.Contains(e, "connection refused") || strings.Contains(e, "127.0.0.1:1/hook") {
				t.Errorf("transport error logged as %q: want the cause, without the URL", e)
			}
		}
		line := fmt.Sprint(en.Message, en.ContextMap())
		for _, secret := range []string{subSecret, hdrSecret, urlSecret, key, "not-logged"} {
			if strings.Contains(line, secret) {
				t.Errorf("a log line holds a secret (%.8s…): %s", secret, line)
			}
		}
	}
}
