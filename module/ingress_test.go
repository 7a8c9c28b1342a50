package module

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/hookgate/hookgate/ingress"
)

// TestWriteJSONBytes holds writeJSON's answers, with and without the fast
// path of status bodies, to json.Marshal's bytes and a newline.
func TestWriteJSONBytes(t *testing.T) {
	for _, tc := range []struct {
		body any
		fast bool
	}{
		{ingress.StatusBody{ID: "evt_0123456789abcdef01234567", Status: "accepted"}, true},
		{ingress.StatusBody{ID: "idem_0123456789abcdef0123456789abcdef", Status: "duplicate"}, true},
		{ingress.StatusBody{Status: "filtered"}, true},
		{ingress.StatusBody{ID: "evt_1", Status: "queued"}, true},
		{ingress.StatusBody{}, true},
		{ingress.StatusBody{ID: `a"b\c`, Status: "accepted"}, false},
		{ingress.StatusBody{ID: "<script>&", Status: "accepted"}, false},
		{ingress.StatusBody{ID: "é\u2028\x01\x7f", Status: "accepted"}, false},
		{ingress.ErrorBody{Error: "unknown workflow or invalid key"}, false},
		{map[string]string{"error": "hookgate is starting"}, false},
	} {
		want, err := json.Marshal(tc.body)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		if _, fast := appendStatusBody(nil, tc.body); fast != tc.fast {
			t.Errorf("%#v: fast path %v, want %v", tc.body, fast, tc.fast)
		}
		rec := httptest.NewRecorder()
		if err := writeJSON(rec, 202, tc.body); err != nil {
			t.Fatal(err)
		}
		if got := rec.Body.String(); got != string(want) {
			t.Errorf("%#v: wrote %q, json.Marshal %q", tc.body, got, want)
		}
		if rec.Code != 202 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%#v: status %d, headers %v", tc.body, rec.Code, rec.Header())
		}
	}
}

// TestRequestCounter: the resolved children are the vector's own.
func TestRequestCounter(t *testing.T) {
	for _, l := range [][2]string{{"a", ingress.OutcomeAccepted}, {"a", ingress.OutcomePassed}, {"unknown", ingress.OutcomeUnauthorized}} {
		for range 2 {
			if got, want := requestCounter(l[0], l[1]), ingressRequests.WithLabelValues(l[0], l[1]); got != want {
				t.Errorf("requestCounter(%q, %q) is not the vector's child", l[0], l[1])
			}
		}
	}
	if requestCounter("a", ingress.OutcomeAccepted) == requestCounter("a", ingress.OutcomePassed) {
		t.Error("two outcomes share a counter")
	}
}

// BenchmarkWriteJSON: the 202 answer through writeJSON, and as writeJSON
// wrote it before, with json.Marshal.
func BenchmarkWriteJSON(b *testing.B) {
	body := ingress.StatusBody{ID: "evt_0123456789abcdef01234567", Status: "accepted"}
	rec := httptest.NewRecorder()
	b.Run("status-body", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec.Body.Reset()
			_ = writeJSON(rec, 202, body)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec.Body.Reset()
			bs, _ := json.Marshal(any(body))
			rec.Header().Set("Content-Type", "application/json")
			rec.Header().Set("Cache-Control", "no-store")
			rec.WriteHeader(202)
			_, _ = rec.Write(append(bs, '\n'))
		}
	})
}

func BenchmarkCountRequest(b *testing.B) {
	b.Run("resolved", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			requestCounter("bench", ingress.OutcomePassed).Inc()
		}
	})
	b.Run("with-label-values", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ingressRequests.WithLabelValues("bench", ingress.OutcomePassed).Inc()
		}
	})
}
