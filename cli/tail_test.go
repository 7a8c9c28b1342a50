package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeLog serves GET /deliveries as the gateway does: each delivery is
// listed at its latest entry, in log order, pageSize at a time, with a
// cursor ("next") only when more follow; GET /events/{id} names the topic.
type fakeLog struct {
	mu       sync.Mutex
	entries  []map[string]any // the log: one delivery state each
	pageSize int
	requests int
}

func (f *fakeLog) add(id, status string, attempts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	atts := make([]any, attempts)
	for i := range atts {
		atts[i] = map[string]any{"status_code": 500, "duration_ms": 3, "error": "Internal Server Error"}
	}
	if status == "succeeded" {
		atts[attempts-1] = map[string]any{"status_code": 200, "duration_ms": 3}
	}
	f.entries = append(f.entries, map[string]any{
		"id": "sub." + id, "event_id": id, "subscription_id": "sub", "status": status, "attempts": atts,
		"updated_at": "2026-12-02T08:00:0" + strconv.Itoa(len(f.entries)%10) + "Z",
	})
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := strings.CutPrefix(r.URL.Path, "/events/"); ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"event": map[string]any{"id": id, "topic": "t." + id, "time": "2026-12-02T08:00:00Z"}})
		return
	}
	f.requests++
	after := -1
	if a := r.URL.Query().Get("after"); a != "" {
		after, _ = strconv.Atoi(a)
	}
	latest := map[string]int{}
	for i, e := range f.entries {
		latest[e["id"].(string)] = i
	}
	out := []any{}
	next := ""
	for i := after + 1; i < len(f.entries); i++ {
		e := f.entries[i]
		if latest[e["id"].(string)] != i {
			continue
		}
		if len(out) == f.pageSize {
			next = strconv.Itoa(i - 1)
			for j := i - 1; j > after; j-- { // the last listed entry
				if latest[f.entries[j]["id"].(string)] == j {
					next = strconv.Itoa(j)
					break
				}
			}
			break
		}
		out = append(out, e)
	}
	body := map[string]any{"deliveries": out}
	if next != "" {
		body["next"] = next
	}
	_ = json.NewEncoder(w).Encode(body)
}

func TestTailFollowsTheLog(t *testing.T) {
	f := &fakeLog{pageSize: 2}
	srv := httptest.NewServer(f)
	defer srv.Close()
	// History: not printed.
	f.add("old1", "succeeded", 1)
	f.add("old2", "pending", 1)
	f.add("old3", "succeeded", 1)
	var out bytes.Buffer
	tl := &tailer{c: &client{base: srv.URL, token: "t", http: srv.Client()}, out: &out, seen: map[string]string{}, events: map[string]bool{}}
	if err := tl.poll(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("history printed:\n%s", &out)
	}

	for _, step := range []struct {
		name string
		do   func()
		want []string // the lines' distinctive parts, in order
	}{
		{"nothing new", func() {}, nil},
		{"an old delivery ends", func() { f.add("old2", "failed", 2) }, []string{
			"delivery  sub.old2  subscription=sub  failed  attempt=2 code=500 3ms  error=\"Internal Server Error\"",
		}},
		{"new events, over several pages", func() {
			f.add("a", "pending", 1)
			f.add("b", "succeeded", 1)
			f.add("c", "succeeded", 1)
			f.add("a", "succeeded", 2)
			f.add("d", "succeeded", 1)
		}, []string{
			"event     b  topic=t.b", "delivery  sub.b  subscription=sub  succeeded  attempt=1 code=200 3ms",
			"event     c  topic=t.c", "delivery  sub.c  subscription=sub  succeeded  attempt=1 code=200 3ms",
			"event     a  topic=t.a", "delivery  sub.a  subscription=sub  succeeded  attempt=2 code=200 3ms",
			"event     d  topic=t.d", "delivery  sub.d  subscription=sub  succeeded  attempt=1 code=200 3ms",
		}},
		{"nothing new again", func() {}, nil},
		{"a replay of a printed delivery", func() { f.add("d", "pending", 2) }, []string{
			"delivery  sub.d  subscription=sub  retrying  attempt=2 code=500 3ms  error=\"Internal Server Error\"",
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			out.Reset()
			step.do()
			if err := tl.poll(t.Context(), true); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(step.want) == 0 {
				if out.Len() != 0 {
					t.Fatalf("printed:\n%s", &out)
				}
				return
			}
			if len(lines) != len(step.want) {
				t.Fatalf("printed %d lines, want %d:\n%s", len(lines), len(step.want), &out)
			}
			for i, w := range step.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d: %q, want %q in it", i, lines[i], w)
				}
			}
		})
	}
}
