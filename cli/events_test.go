package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

func TestReadEvents(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		n          int
		err        string
	}{
		{"array", "[\n {\"topic\": \"a\"},\n {\"topic\": \"b\", \"data\": {\"x\": [1, 2]}}\n]\n", 2, ""},
		{"NDJSON with blank lines", "{\"topic\":\"a\"}\n\n{\"topic\":\"b\"}\r\n{\"topic\":\"c\"}", 3, ""},
		{"objects one after the other", `{"topic":"a"}{"topic":"b"}`, 2, ""},
		{"empty", " \n", 0, "holds no events"},
		{"empty array", "[]", 0, "holds no events"},
		{"not an object", "{\"topic\":\"a\"}\n42\n", 0, "event 1 is not a JSON object"},
		{"not JSON", "{\"topic\":\"a\"}\n{nope\n", 0, "event 1:"},
		{"array of non-objects", `["a"]`, 0, "event 0 is not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			evs, err := readEvents(&cobra.Command{}, path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(evs) != tc.n {
				t.Fatalf("%d events, %v; want %d", len(evs), err, tc.n)
			}
			for _, ev := range evs {
				if bytes.ContainsAny(ev, " \n") {
					t.Errorf("event not compacted: %s", ev)
				}
			}
		})
	}
}

// TestPublishFile: a file of events goes out in batches of at most 1000
// events and 1 MiB, in order; a refused batch names the event by its place
// in the file.
func TestPublishFile(t *testing.T) {
	var mu sync.Mutex
	var batches [][]json.RawMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/events/batch" || r.Method != http.MethodPost || len(b) > batchBytes {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		var req struct{ Events []json.RawMessage }
		_ = json.Unmarshal(b, &req)
		mu.Lock()
		batches = append(batches, req.Events)
		mu.Unlock()
		var out []map[string]string
		for i, ev := range req.Events {
			if strings.Contains(string(ev), `"bad"`) {
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprintf(w, `{"error":"1 of %d events are invalid","errors":[{"index":%d,"error":"topic: required","field":"topic"}]}`, len(req.Events), i)
				return
			}
			var e struct{ ID string }
			_ = json.Unmarshal(ev, &e)
			out = append(out, map[string]string{"id": e.ID, "status": "accepted"})
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"events": out})
	}))
	defer srv.Close()

	run := func(events []string) (string, string, error) {
		path := filepath.Join(t.TempDir(), "events.ndjson")
		if err := os.WriteFile(path, []byte(strings.Join(events, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		batches = nil
		cmd := NewCommand()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs([]string{"--api", srv.URL, "--token", "tok", "events", "publish", "--file", path})
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}
	events := func(n, size int) []string {
		var evs []string
		for i := range n {
			evs = append(evs, fmt.Sprintf(`{"id":"e-%d","topic":"t","data":"%s"}`, i, strings.Repeat("x", size)))
		}
		return evs
	}

	for _, tc := range []struct {
		name  string
		n     int
		size  int
		sizes []int // events per request
	}{
		{"one batch", 3, 10, []int{3}},
		{"1000 events a request", 2500, 10, []int{1000, 1000, 500}},
		{"1 MiB a request", 1200, 2000, []int{514, 514, 172}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(events(tc.n, tc.size))
			if err != nil {
				t.Fatalf("%v: %s", err, errOut)
			}
			var sizes []int
			i := 0
			for _, b := range batches {
				sizes = append(sizes, len(b))
				for _, ev := range b {
					if !strings.HasPrefix(string(ev), fmt.Sprintf(`{"id":"e-%d",`, i)) {
						t.Fatalf("event %d out of order: %.30s", i, ev)
					}
					i++
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.sizes) {
				t.Errorf("batches of %v events, want %v", sizes, tc.sizes)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != tc.n || lines[0] != "e-0 accepted" || lines[tc.n-1] != fmt.Sprintf("e-%d accepted", tc.n-1) {
				t.Errorf("output: %d lines, first %q", len(lines), lines[0])
			}
			if !strings.Contains(errOut, fmt.Sprintf("%d events: %d accepted, 0 duplicate", tc.n, tc.n)) {
				t.Errorf("summary: %q", errOut)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		evs := events(1500, 10)
		evs[1200] = `{"id":"bad","topic":"bad"}`
		out, errOut, err := run(evs)
		want := "events 1000 to 1499 refused, none of them stored (events 0 to 999 were published): 1 invalid; event 1200: topic: required [HTTP 422]"
		if err == nil || !strings.Contains(errOut, want) {
			t.Fatalf("err %v, stderr %q; want %q", err, errOut, want)
		}
		if strings.Count(out, " accepted\n") != 1000 {
			t.Errorf("the first batch's results were not printed")
		}
	})
}
