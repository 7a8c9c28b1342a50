package registry

import (
	"errors"
	"github.com/hookgate/hookgate/delivery/destination"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"50/s", 50, true},
		{"300/m", 5, true},
		{"3600/h", 1, true},
		{" 2.5 / s ", 2.5, true},
		{"1/h", 1.0 / 3600, true},
		{"100000/s", 100000, true},
		{"100001/s", 0, false},
		{"0/s", 0, false},
		{"-1/s", 0, false},
		{"50", 0, false},
		{"50/d", 0, false},
		{"x/s", 0, false},
		{"0.5/h", 0, false},
		{"NaN/s", 0, false},
	} {
		got, err := ParseRate(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestCompileFlow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    FlowControl
		field string // "" when valid
		check func(destination.Flow) bool
	}{
		{"defaults", FlowControl{}, "", func(f destination.Flow) bool {
			return f.Rate == 0 && !f.BreakerOff && f.Failures == 5 && f.Cooldown == 5*time.Second &&
				f.MaxCooldown == 5*time.Minute && f.DisableAfter == 120*time.Hour
		}},
		{"rate", FlowControl{RateLimit: "50/s"}, "", func(f destination.Flow) bool { return f.Rate == 50 && f.Burst == 5 }},
		{"slow rate burst one", FlowControl{RateLimit: "1/m"}, "", func(f destination.Flow) bool { return f.Burst == 1 }},
		{"bad rate", FlowControl{RateLimit: "fast"}, "rate_limit", nil},
		{"not ordered", FlowControl{}, "", func(f destination.Flow) bool { return !f.Ordered && f.OrderKey == nil }},
		{"ordered, one key", FlowControl{Ordered: true}, "", func(f destination.Flow) bool { return f.Ordered && f.OrderKey == nil }},
		{"ordered by key", FlowControl{Ordered: true, OrderKey: "data.RecordID"}, "",
			func(f destination.Flow) bool { return f.Ordered && f.OrderKey.String() == "data.RecordID" }},
		{"order key without ordered", FlowControl{OrderKey: "data.RecordID"}, "order_key", nil},
		{"bad order key", FlowControl{Ordered: true, OrderKey: "data.("}, "order_key", nil},
		{"order key unknown name", FlowControl{Ordered: true, OrderKey: "nosuch.RecordID"}, "order_key", nil},
		{"in flight", FlowControl{MaxInFlight: 3}, "", func(f destination.Flow) bool { return f.MaxInFlight == 3 }},
		{"in flight over", FlowControl{MaxInFlight: 1025}, "max_in_flight", nil},
		{"in flight negative", FlowControl{MaxInFlight: -1}, "max_in_flight", nil},
		{"breaker off", FlowControl{Breaker: &Breaker{Off: true}}, "", func(f destination.Flow) bool { return f.BreakerOff }},
		{"breaker", FlowControl{Breaker: &Breaker{Failures: 2, Cooldown: Duration(time.Second), MaxCooldown: Duration(4 * time.Second)}}, "",
			func(f destination.Flow) bool {
				return f.Failures == 2 && f.Cooldown == time.Second && f.MaxCooldown == 4*time.Second
			}},
		{"long cooldown raises the cap", FlowControl{Breaker: &Breaker{Cooldown: Duration(10 * time.Minute)}}, "",
			func(f destination.Flow) bool { return f.MaxCooldown == 10*time.Minute }},
		{"failures over", FlowControl{Breaker: &Breaker{Failures: 1001}}, "breaker.failures", nil},
		{"cooldown over", FlowControl{Breaker: &Breaker{Cooldown: Duration(2 * time.Hour)}}, "breaker.cooldown", nil},
		{"cap under cooldown", FlowControl{Breaker: &Breaker{Cooldown: Duration(time.Minute), MaxCooldown: Duration(time.Second)}}, "breaker.max_cooldown", nil},
		{"disable after", FlowControl{DisableAfter: Duration(2 * time.Second)}, "", func(f destination.Flow) bool { return f.DisableAfter == 2*time.Second }},
		{"disable after too short", FlowControl{DisableAfter: Duration(time.Millisecond)}, "disable_after", nil},
		{"disable after too long", FlowControl{DisableAfter: Duration(31 * 24 * time.Hour)}, "disable_after", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := compileFlow("targets[1].", tc.in)
			if tc.field != "" {
				var ie *InvalidError
				if !errors.As(err, &ie) || ie.Field != "targets[1]."+tc.field {
					t.Fatalf("err = %v, want one naming targets[1].%s", err, tc.field)
				}
				return
			}
			if err != nil || !tc.check(f) {
				t.Fatalf("compileFlow = %+v, %v", f, err)
			}
		})
	}
}

func TestBuiltinTopicListedAndReadOnly(t *testing.T) {
	r := New(nil, nil, nil)
	tp, ok := r.Topic(TopicSubscriptionDisabled)
	if !ok || tp.Def.Source != SourceBuiltin {
		t.Fatalf("Topic(%q) = %+v, %v", TopicSubscriptionDisabled, tp, ok)
	}
	if !r.isConfigTopic(TopicSubscriptionDisabled) {
		t.Error("the built-in topic is not read-only")
	}
}
