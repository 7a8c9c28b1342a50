package delivery

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// stdEntries is what encoding/json writes for entries, without HTML
// escaping: what appendEntries must write byte for byte.
func stdEntries(t *testing.T, entries []*logEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(entries); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

func TestLogEntryJSONAsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 20, 15, 4, 123456789, time.UTC)
	next := at.Add(90 * time.Second)
	paris := at.In(time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		entries []*logEntry
	}{
		{"none", []*logEntry{}},
		{"minimal", []*logEntry{{Delivery: "d", EventID: "e", Destination: "x", Status: "pending", At: at}}},
		{"succeeded with an attempt and headers", []*logEntry{{
			Delivery: "sub_1.evt_1", EventID: "evt_1", EventSeq: 1 << 40, Destination: "sub_1", SubscriptionID: "sub_1",
			Status: "succeeded", At: at,
			Attempt: &Attempt{At: at, StatusCode: 200, DurationMS: 12, RequestHeaders: map[string]string{
				"Webhook-Signature": "[redacted]", "Content-Type": "application/json", "User-Agent": "hookgate/1", "Webhook-Id": "evt_1",
				"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			}},
		}}},
		{"retrying, a workflow, a replay, a zone", []*logEntry{{
			Delivery: "wf=orders=ab12.evt_2", EventID: "evt_2", EventSeq: 7, Destination: "wf=orders=ab12", WorkflowID: "orders",
			Status: "retrying", Reason: "", NextAttemptAt: &next, Replay: 2, At: paris,
			Attempt: &Attempt{At: paris, DurationMS: 30000, Error: "dial tcp 127.0.0.2:80: connect: connection refused"},
		}}},
		{"escapes", []*logEntry{{
			Delivery: "a\"b\\c", EventID: "<script>&amp;</script>", Destination: "tab\there\nnew line\r\x00\x1f",
			Status: "failed", Reason: "invalid \xff utf-8 and \u2028 \u2029 separators, é and 日本",
			At:      at,
			Attempt: &Attempt{At: at, StatusCode: 500, Response: `{"error":"<b>boom</b>"}`, RequestHeaders: map[string]string{}},
		}}},
		{"several", []*logEntry{
			{Delivery: "1", EventID: "1", Destination: "s", Status: "pending", At: at},
			{Delivery: "2", EventID: "2", Destination: "s", Status: "failed", Reason: "gone", At: at, Attempt: &Attempt{At: at, StatusCode: 410}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := marshalEntries(tt.entries)
			if want := stdEntries(t, tt.entries); !bytes.Equal(got, want) {
				t.Fatalf("appendEntries:\n%s\nencoding/json:\n%s", got, want)
			}
			var back []*logEntry
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("not read back: %v", err)
			}
		})
	}
}

// TestLogEntryJSONRandom holds appendEntries equal to encoding/json over
// random strings, headers and numbers.
func TestLogEntryJSONRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "Z9", "\"", "\\", "\n", "\x01", "<", ">", "&", "é", "日", "\u2028", "\xff", "\xc3", " ", "/", "\U0001F600"}
	str := func() string {
		var b []byte
		for range rng.IntN(6) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return string(b)
	}
	for i := range 2000 {
		at := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
		e := &logEntry{
			Delivery: str(), EventID: str(), EventSeq: rng.Uint64(), Destination: str(), SubscriptionID: str(),
			WorkflowID: str(), Status: str(), Reason: str(), Replay: rng.IntN(3), At: at,
		}
		if rng.IntN(2) == 0 {
			n := at.Add(time.Duration(rng.Int64N(1e12)))
			e.NextAttemptAt = &n
		}
		if rng.IntN(3) > 0 {
			e.Attempt = &Attempt{At: at, StatusCode: rng.IntN(600), DurationMS: rng.Int64N(1e6), Error: str(), Response: str()}
			if rng.IntN(2) == 0 {
				e.Attempt.RequestHeaders = map[string]string{}
				for range rng.IntN(40) {
					e.Attempt.RequestHeaders[str()] = str()
				}
			}
		}
		entries := []*logEntry{e}
		got := appendEntries(nil, entries)
		if want := stdEntries(t, entries); !bytes.Equal(got, want) {
			t.Fatalf("case %d: appendEntries:\n%s\nencoding/json:\n%s", i, got, want)
		}
		var back []*logEntry
		if err := json.Unmarshal(got, &back); err != nil || len(back) != 1 {
			t.Fatalf("case %d: not read back: %v", i, err)
		}
		if e.Attempt != nil && len(e.Attempt.RequestHeaders) == 0 {
			e.Attempt.RequestHeaders = nil // omitted when empty
		}
		if !validUTF8Fields(e) {
			continue // invalid UTF-8 reads back as U+FFFD
		}
		if !reflect.DeepEqual(back[0].Attempt, e.Attempt) || back[0].Delivery != e.Delivery || back[0].EventSeq != e.EventSeq {
			t.Fatalf("case %d: read back %+v, want %+v", i, back[0], e)
		}
	}
}

func validUTF8Fields(e *logEntry) bool {
	b, _ := json.Marshal(e)
	var back logEntry
	_ = json.Unmarshal(b, &back)
	return back.Delivery == e.Delivery && (e.Attempt == nil || reflect.DeepEqual(back.Attempt, e.Attempt))
}

func BenchmarkLogEntryJSON(b *testing.B) {
	at := time.Now().UTC()
	e := &logEntry{
		Delivery: "sub_1.evt_6b1076990000000000000031", EventID: "evt_6b1076990000000000000031", EventSeq: 123456,
		Destination: "sub_1", SubscriptionID: "sub_1", Status: "succeeded", At: at,
		Attempt: &Attempt{At: at, StatusCode: 200, DurationMS: 3, RequestHeaders: map[string]string{
			"Content-Type": "application/json", "User-Agent": "hookgate/1", "Webhook-Id": "evt_1", "Webhook-Timestamp": "1796241051",
			"Webhook-Signature": "[redacted]", "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}},
	}
	entries := []*logEntry{e, e, e, e}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = marshalEntries(entries)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = json.Marshal(entries)
		}
	})
}
