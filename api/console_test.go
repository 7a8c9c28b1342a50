package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/console"
	"github.com/hookgate/hookgate/delivery"
)

// The console's page and assets are served without a token; nothing else
// is.
func TestConsoleMount(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		console      bool // answered by the console (CSP set)
	}{
		{"GET", "/", http.StatusOK, true},
		{"HEAD", "/", http.StatusOK, true},
		{"GET", "/console/app.js", http.StatusOK, true},
		{"GET", "/console/style.css", http.StatusOK, true},
		{"GET", "/console/nope.js", http.StatusNotFound, true},
		{"POST", "/", http.StatusUnauthorized, false},
		{"POST", "/console/app.js", http.StatusUnauthorized, false},
		{"GET", "/workflows", http.StatusUnauthorized, false},
		{"GET", "/deliveries", http.StatusUnauthorized, false},
		{"GET", "/activity", http.StatusUnauthorized, false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(req{method: tc.method, path: tc.path, token: "-"})
			if r.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Code, tc.status, r.Body)
			}
			if got := r.Header().Get("Content-Security-Policy"); (got == console.CSP) != tc.console {
				t.Errorf("CSP %q", got)
			}
		})
	}
}

// GET /deliveries?since=&until= lists the deliveries changed in the window;
// GET /activity counts attempts and failures per minute.
func TestDeliveryWindowAndActivity(t *testing.T) {
	e := newEnv(t)
	ok := newSink(t, http.StatusOK)
	bad := newSink(t, http.StatusInternalServerError)
	e.put("/topics/order.created", map[string]any{}).expect(http.StatusCreated)
	var good, failing subscriptionView
	e.post("/subscriptions", map[string]any{"name": "good", "topics": []string{"order.*"}, "url": ok.srv.URL}).
		expect(http.StatusCreated).decode(&good)
	e.remember(good.Secret)
	e.post("/subscriptions", map[string]any{"name": "failing", "topics": []string{"order.*"}, "url": bad.srv.URL, "max_attempts": 1}).
		expect(http.StatusCreated).decode(&failing)
	e.remember(failing.Secret)

	t0 := time.Now().UTC()
	e.post("/events", map[string]any{"id": "first", "topic": "order.created", "data": map[string]int{"n": 1}}).expect(http.StatusAccepted)
	eventually(t, 10*time.Second, "the first event's deliveries", func() bool {
		return len(e.deliveries("event=first&status=succeeded").Deliveries)+len(e.deliveries("event=first&status=failed").Deliveries) == 2
	})
	time.Sleep(50 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(50 * time.Millisecond)
	e.post("/events", map[string]any{"id": "second", "topic": "order.created", "data": map[string]int{"n": 2}}).expect(http.StatusAccepted)
	eventually(t, 10*time.Second, "the second event's deliveries", func() bool {
		return len(e.deliveries("event=second&status=succeeded").Deliveries)+len(e.deliveries("event=second&status=failed").Deliveries) == 2
	})

	ts := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }
	tests := []struct {
		query  string
		events string // the event ids listed, in order
	}{
		{"since=" + ts(t0), "first,first,second,second"},
		{"since=" + ts(t0) + "&until=" + ts(mid), "first,first"},
		{"since=" + ts(mid), "second,second"},
		{"since=" + ts(mid) + "&subscription=" + good.ID, "second"},
		{"since=" + ts(t0) + "&status=failed", "first,second"},
		{"since=" + ts(t0) + "&subscription=" + failing.ID + "&status=succeeded", ""},
		{"until=" + ts(t0), ""},
		{"since=" + ts(time.Now().Add(time.Minute)), ""},
		{"since=" + ts(t0) + "&event=second", "second,second"},
		{"until=" + ts(mid) + "&event=second", ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got := e.deliveries(tc.query)
			var ids []string
			for _, d := range got.Deliveries {
				ids = append(ids, d.EventID)
			}
			if strings.Join(ids, ",") != tc.events || got.Next != "" {
				t.Errorf("events %v (next %q), want %s", ids, got.Next, tc.events)
			}
		})
	}
	// Pages: one at a time, with the cursor, within the window.
	page1 := e.deliveries("limit=3&since=" + ts(t0))
	if len(page1.Deliveries) != 3 || page1.Next == "" {
		t.Fatalf("page 1: %d (next %q)", len(page1.Deliveries), page1.Next)
	}
	page2 := e.deliveries("limit=3&since=" + ts(t0) + "&after=" + url.QueryEscape(page1.Next))
	if len(page2.Deliveries) != 1 || page2.Next != "" || page2.Deliveries[0].EventID != "second" {
		t.Errorf("page 2: %+v (next %q)", page2.Deliveries, page2.Next)
	}
	for _, bad := range []string{"since=yesterday", "until=2026-13-01T00:00:00Z", "since=" + ts(mid) + "&until=" + ts(t0),
		"since=" + ts(t0) + "&status=done", "since=" + ts(t0) + "&limit=0", "since=" + ts(t0) + "&after=x", "since=" + ts(t0) + "&workflow=no%20way"} {
		errorCheck(t, e.get("/deliveries?"+bad), http.StatusBadRequest, "")
	}

	var a delivery.Activity
	e.get("/activity").expect(http.StatusOK).decode(&a)
	sum := func(xs []int) int {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n
	}
	if a.Minutes != 60 || len(a.Total.Attempts) != 60 || a.Truncated {
		t.Fatalf("activity: %+v", a)
	}
	if sum(a.Total.Attempts) != 4 || sum(a.Total.Failures) != 2 {
		t.Errorf("total: %+v", a.Total)
	}
	if g, f := a.Destinations[good.ID], a.Destinations[failing.ID]; g == nil || f == nil ||
		sum(g.Attempts) != 2 || sum(g.Failures) != 0 || sum(f.Attempts) != 2 || sum(f.Failures) != 2 {
		t.Errorf("per subscription: %+v", a.Destinations)
	}
	// The attempts are counted in the current minute, or the one before.
	if last := a.Total.Attempts[58] + a.Total.Attempts[59]; last != 4 {
		t.Errorf("attempts by minute: %v", a.Total.Attempts)
	}
	e.get("/activity?minutes=5").expect(http.StatusOK).decode(&a)
	if a.Minutes != 5 || len(a.Total.Attempts) != 5 || sum(a.Total.Attempts) != 4 {
		t.Errorf("5 minutes: %+v", a)
	}
	for _, bad := range []string{"0", "61", "x"} {
		errorCheck(t, e.get("/activity?minutes="+bad), http.StatusBadRequest, "")
	}
}
