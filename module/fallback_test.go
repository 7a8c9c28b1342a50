package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestFallbackWriterDecision: what the next handler does decides whether the
// request goes to the fallback, and what the sender sees of it meanwhile.
func TestFallbackWriterDecision(t *testing.T) {
	for _, tc := range []struct {
		name string
		// next is the next handler's work on the writer.
		next func(w http.ResponseWriter) error
		// reason is the fallback reason ("" for pass-through).
		reason string
		// passed is what reached the sender: status and body (0: nothing).
		passedStatus int
		passedBody   string
	}{
		{"200 passes", answer(200, "ok"), "", 200, "ok"},
		{"201 passes", answer(201, "made"), "", 201, "made"},
		{"404 passes", answer(404, "nope"), "", 404, "nope"},
		{"500 passes: not a fallback status", answer(500, "boom"), "", 500, "boom"},
		{"501 passes", answer(501, "no"), "", 501, "no"},
		{"502 held", answer(502, "bad gateway"), "status_502", 0, ""},
		{"503 held", answer(503, "maintenance"), "status_503", 0, ""},
		{"504 held", answer(504, "slow"), "status_504", 0, ""},
		{"body without a status is 200", func(w http.ResponseWriter) error {
			_, err := io.WriteString(w, "implicit")
			return err
		}, "", 200, "implicit"},
		{"1xx passes, then 503 is held", func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusEarlyHints)
			return answer(503, "down")(w)
		}, "status_503", 103, ""},
		{"app down: the proxy fails with 502", failWith(502), "error_502", 0, ""},
		{"no upstream: 503", failWith(503), "error_503", 0, ""},
		{"timeout: 504", failWith(504), "error_504", 0, ""},
		{"client gone: 499 is not queued", failWith(499), "", 0, ""},
		{"an error without a status", func(http.ResponseWriter) error { return errors.New("x") }, "", 0, ""},
		{"failed after a 200 began", func(w http.ResponseWriter) error {
			w.WriteHeader(200)
			return caddyhttp.Error(502, errors.New("upstream went away mid-body"))
		}, "", 200, ""},
		{"streamed with ReadFrom", func(w http.ResponseWriter) error {
			w.WriteHeader(200)
			_, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("streamed"))
			return err
		}, "", 200, "streamed"},
		{"held, streamed with ReadFrom", func(w http.ResponseWriter) error {
			w.WriteHeader(503)
			_, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("dropped"))
			return err
		}, "status_503", 0, ""},
		{"held answer over the bound is cut short", func(w http.ResponseWriter) error {
			w.WriteHeader(502)
			_, err := w.(io.ReaderFrom).ReadFrom(io.LimitReader(zeroes{}, maxHeldBody+10))
			if !errors.Is(err, errHeldTooLong) {
				return errors.New("not cut short")
			}
			return caddyhttp.Error(502, err)
		}, "status_502", 0, ""},
		{"held answer over the bound, by Write", func(w http.ResponseWriter) error {
			w.WriteHeader(504)
			chunk := make([]byte, 64<<10)
			for range maxHeldBody / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			if _, err := w.Write([]byte{1}); !errors.Is(err, errHeldTooLong) {
				return errors.New("not cut short")
			}
			return nil
		}, "status_504", 0, ""},
		{"a flush of a held answer sends nothing", func(w http.ResponseWriter) error {
			w.WriteHeader(503)
			return http.NewResponseController(w).Flush()
		}, "status_503", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spy := &spyWriter{header: http.Header{"X-Before": {"kept"}}}
			fw := newFallbackWriter(spy)
			err := tc.next(fw)
			reason, ok := fw.fallbackReason(err)
			if reason != tc.reason || ok != (tc.reason != "") {
				t.Fatalf("fallbackReason = %q, %v (err %v); want %q", reason, ok, err, tc.reason)
			}
			final := 0
			for _, s := range spy.statuses {
				if s >= 200 {
					final = s
				}
			}
			if tc.passedStatus == 0 || tc.passedStatus < 200 {
				if final != 0 || spy.body.Len() > 0 || spy.flushed {
					t.Errorf("the sender got %v %q (flushed %v), want no answer yet", spy.statuses, spy.body.String(), spy.flushed)
				}
				if tc.passedStatus != 0 && (len(spy.statuses) != 1 || spy.statuses[0] != tc.passedStatus) {
					t.Errorf("informational answers %v, want %d", spy.statuses, tc.passedStatus)
				}
			} else if final != tc.passedStatus || spy.body.String() != tc.passedBody {
				t.Errorf("the sender got %v %q, want %d %q", spy.statuses, spy.body.String(), tc.passedStatus, tc.passedBody)
			}
			if ok {
				fw.restoreHeader()
				if h := spy.Header(); h.Get("X-App") != "" || h.Get("X-Before") != "kept" {
					t.Errorf("header after restore: %v", h)
				}
			}
		})
	}
}

// spyWriter records what reaches the sender.
type spyWriter struct {
	header   http.Header
	statuses []int
	body     bytes.Buffer
	flushed  bool
}

func (s *spyWriter) Header() http.Header { return s.header }
func (s *spyWriter) WriteHeader(status int) {
	s.statuses = append(s.statuses, status)
}
func (s *spyWriter) Write(p []byte) (int, error) {
	if len(s.statuses) == 0 || s.statuses[len(s.statuses)-1] < 200 {
		s.WriteHeader(200)
	}
	return s.body.Write(p)
}
func (s *spyWriter) Flush() { s.flushed = true }

// answer is a next handler answering status with body and a header.
func answer(status int, body string) func(http.ResponseWriter) error {
	return func(w http.ResponseWriter) error {
		w.Header().Set("X-App", "yes")
		w.WriteHeader(status)
		_, err := io.WriteString(w, body)
		return err
	}
}

// failWith is a next handler that fails, as reverse_proxy does, with a
// caddyhttp.Error and nothing written.
func failWith(status int) func(http.ResponseWriter) error {
	return func(http.ResponseWriter) error { return caddyhttp.Error(status, errors.New("upstream")) }
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// The README's fallback example adapts (its sample file replaced by one of
// the repository's), with every option in the JSON.
func TestREADMEFallbackExample(t *testing.T) {
	example := readmeExample(t, "fallback http")
	example = strings.Replace(example, "sample schemas/order.json", "sample ../examples/easylife/groupcreated.json", 1)
	cfg, err := adapt(t, "{\n\thookgate {\n\t\tallow_targets 127.0.0.1/32\n\t}\n}\n:8080 {\n"+example+"}\n")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(cfg)
	want := `"fallback":{"breaker":{"cooldown":"10s","failures":3},"disable_after":"72h0m0s","max_in_flight":4,` +
		`"rate_limit":"20/s","retry_schedule":["10s","1m0s","5m0s","30m0s","2h0m0s"],"timeout":"10s","url":"http://127.0.0.1:3000"}`
	if !strings.Contains(string(out), want) {
		t.Errorf("adapted config lacks %s:\n%s", want, out)
	}
}
