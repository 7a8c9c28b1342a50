package module

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookgate/hookgate/delivery/destination"
)

// TestMetrics: the Prometheus collectors are in Caddy's metrics registry and
// count requests by workflow and outcome, validation failures and delivery
// attempts.
func TestMetrics(t *testing.T) {
	target := newSink(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	handle /metrics {
		metrics
	}
	hookgate_ingress /hooks/* {
		workflow counted {
			sample ../examples/easylife/groupcreated.json
			key %s
			forward %s/in
		}
	}
	respond "app" 200
`, pinnedKey, target.URL))
	if status, _ := call(t, "POST", base+"/hooks/counted/"+pinnedKey, easylife(t, "groupcreated")); status != 202 {
		t.Fatalf("webhook: %d", status)
	}
	if status, _ := call(t, "POST", base+"/hooks/counted/"+pinnedKey, `{"eventType":1}`); status != 422 {
		t.Fatalf("invalid webhook: %d", status)
	}
	if status, _ := call(t, "POST", base+"/hooks/counted/not-the-key", `{}`); status != 401 {
		t.Fatalf("wrong key: %d", status)
	}
	waitFor(t, "delivery", 10*time.Second, func() bool { return len(target.received()) == 1 })
	var text string
	waitFor(t, "metrics", 5*time.Second, func() bool {
		_, body := call(t, "GET", base+"/metrics", nil)
		text, _ = body["_raw"].(string)
		return strings.Contains(text, `hookgate_delivery_attempts_total`)
	})
	for _, want := range []string{
		`hookgate_ingress_requests_total{outcome="accepted",workflow="counted"} 1`,
		`hookgate_ingress_requests_total{outcome="invalid",workflow="counted"} 1`,
		`hookgate_ingress_requests_total{outcome="unauthorized",workflow="unknown"}`,
		`hookgate_ingress_validation_failures_total{workflow="counted"} 1`,
		`hookgate_delivery_attempt_duration_seconds_count{kind="workflow"}`,
		`hookgate_delivery_queue_depth`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The pipeline's flow observations count by kind of destination.
func TestFlowObservationsCount(t *testing.T) {
	m := &metrics{}
	for _, tc := range []struct {
		name    string
		dest    *destination.Destination
		kind    string
		observe func(*destination.Destination)
		counter *prometheus.CounterVec
	}{
		{"deferred subscription delivery", &destination.Destination{ID: "s", SubscriptionID: "s"}, "subscription", m.Deferred, deferredDeliveries},
		{"deferred workflow delivery", &destination.Destination{ID: "w=t", WorkflowID: "w"}, "workflow", m.Deferred, deferredDeliveries},
		{"rate-limited subscription delivery", &destination.Destination{ID: "s", SubscriptionID: "s"}, "subscription", m.RateLimited, rateLimited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.counter.WithLabelValues(tc.kind)
			value := func() float64 {
				var out dto.Metric
				if err := c.Write(&out); err != nil {
					t.Fatal(err)
				}
				return out.GetCounter().GetValue()
			}
			before := value()
			tc.observe(tc.dest)
			tc.observe(tc.dest)
			if got := value() - before; got != 2 {
				t.Errorf("counted %v, want 2", got)
			}
		})
	}
}
