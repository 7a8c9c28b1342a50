package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDurationUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`"1m30s"`, 90 * time.Second, false},
		{`"10s"`, 10 * time.Second, false},
		{`"250ms"`, 250 * time.Millisecond, false},
		{`"0s"`, 0, false},
		{`"-2s"`, -2 * time.Second, false},
		{`"1h2m3.5s"`, time.Hour + 2*time.Minute + 3500*time.Millisecond, false},
		{`1500000000`, 1500 * time.Millisecond, false}, // a number is nanoseconds
		{`0`, 0, false},
		{`-5`, -5, false},
		{`null`, 7, false}, // null leaves the value alone (encoding/json convention)
		{`"ten seconds"`, 0, true},
		{`"10"`, 0, true}, // a string needs a unit
		{`""`, 0, true},
		{`1.5`, 0, true},
		{`1e9`, 0, true},
		{`true`, 0, true},
		{`{}`, 0, true},
		{`"\u0031s"`, time.Second, false}, // escapes are decoded first
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			d := Duration(7)
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, want an error", tc.in, d.Std())
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.in, err)
			}
			if d.Std() != tc.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.in, d.Std(), tc.want)
			}
		})
	}
}

func TestDurationInStruct(t *testing.T) {
	var tg Target
	if err := json.Unmarshal([]byte(`{"url":"http://127.0.0.1/","timeout":"3s","retry_schedule":["1s",2000000000]}`), &tg); err != nil {
		t.Fatal(err)
	}
	if tg.Timeout.Std() != 3*time.Second || len(tg.RetrySchedule) != 2 ||
		tg.RetrySchedule[0].Std() != time.Second || tg.RetrySchedule[1].Std() != 2*time.Second {
		t.Errorf("decoded %+v", tg)
	}
	// A null duration in a create body is "not set", not an error.
	var w Workflow
	if err := StrictUnmarshal([]byte(`{"id":"x","grace":null}`), &w); err != nil || w.Grace != 0 {
		t.Errorf("grace null: %v, %v", w.Grace, err)
	}
	err := json.Unmarshal([]byte(`{"url":"x","timeout":"soon"}`), &tg)
	if err == nil || !strings.Contains(err.Error(), `invalid duration "soon"`) {
		t.Errorf("bad duration error = %v", err)
	}
}

func TestDurationMarshalJSON(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{90 * time.Second, `"1m30s"`},
		{0, `"0s"`},
		{250 * time.Millisecond, `"250ms"`},
		{-time.Second, `"-1s"`},
		{25 * time.Hour, `"25h0m0s"`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(Duration(tc.d))
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.d, b, err, tc.want)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back.Std() != tc.d {
			t.Errorf("round trip of %v = %v, %v", tc.d, back.Std(), err)
		}
	}
	// omitempty leaves a zero duration out.
	b, _ := json.Marshal(Target{URL: "u"})
	if strings.Contains(string(b), "timeout") {
		t.Errorf("zero timeout marshalled: %s", b)
	}
}

func TestInvalidError(t *testing.T) {
	inner := errors.New("boom")
	err := error(&InvalidError{Field: "url", Err: inner})
	if err.Error() != "url: boom" {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, inner) {
		t.Error("InvalidError does not unwrap")
	}
	// A message that names the field already is not prefixed twice.
	if err := invalid("filter", "filter %q: boom", "x"); err.Error() != `filter "x": boom` {
		t.Errorf("Error() = %q", err.Error())
	}
	err = invalid("targets[1].url", "bad %d", 7)
	if f, ok := invalidField(err); !ok || f != "targets[1].url" || err.Error() != "targets[1].url: bad 7" {
		t.Errorf("invalid() = %v (field %q)", err, f)
	}
}

func TestIsEnabled(t *testing.T) {
	for _, tc := range []struct {
		enabled *bool
		want    bool
	}{{nil, true}, {ptr(true), true}, {ptr(false), false}} {
		if got := (&Workflow{Enabled: tc.enabled}).IsEnabled(); got != tc.want {
			t.Errorf("Workflow.IsEnabled(%v) = %v", tc.enabled, got)
		}
		if got := (&Subscription{Enabled: tc.enabled}).IsEnabled(); got != tc.want {
			t.Errorf("Subscription.IsEnabled(%v) = %v", tc.enabled, got)
		}
	}
}

// The stored subscription's own secret field wins over the embedded one, so
// a stored document carries exactly one "secret".
func TestStoredSubscriptionJSON(t *testing.T) {
	st := storedSubscription{
		Subscription: Subscription{ID: "s", Name: "n", Secret: "embedded"},
		Secret:       "outer", PreviousSecret: "old",
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "embedded") || !strings.Contains(string(b), `"secret":"outer"`) {
		t.Errorf("stored form = %s", b)
	}
	var back storedSubscription
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Secret != "outer" || back.PreviousSecret != "old" || back.Subscription.Secret != "" {
		t.Errorf("decoded %+v", back)
	}
}
