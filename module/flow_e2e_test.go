package module

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFlowControlFromCaddyfile (issue #9): flow control declared in the
// Caddyfile, through real Caddy: a subscription's rate_limit measured at
// the sink, a forward target's circuit opening after its failures (seen in
// the API and the metrics) and closing after its probe, nothing lost.
func TestFlowControlFromCaddyfile(t *testing.T) {
	paced := newSink(t)
	flaky := newSink(t, 503, 503, 503)
	startCaddy(t, t.TempDir(), fmt.Sprintf(`
		topic job.done
		subscription paced {
			topics job.done
			url %s
			rate_limit 20/s
		}
`, paced.URL), fmt.Sprintf(`
	handle /metrics {
		metrics
	}
	hookgate_ingress /hooks/* {
		workflow breaking {
			key %s
			forward %s/in {
				id flaky
				retry_schedule 50ms
				max_in_flight 1
				breaker {
					failures 2
					cooldown 1s
				}
			}
		}
	}
%s`, pinnedKey, flaky.URL, apiBlock))

	// The forward target fails twice: its circuit opens.
	for i := range 3 {
		if status, _ := call(t, "POST", base+"/hooks/breaking/"+pinnedKey, nil); status != http.StatusAccepted {
			t.Fatalf("webhook %d: %d", i, status)
		}
	}
	circuit := func() map[string]any {
		_, wf := apiCall(t, "GET", "/workflows/breaking", nil)
		targets, _ := wf["targets"].([]any)
		if len(targets) != 1 {
			t.Fatalf("workflow targets: %v", wf)
		}
		tg := targets[0].(map[string]any)
		if tg["max_in_flight"] != float64(1) {
			t.Errorf("target view %v", tg)
		}
		c, _ := tg["circuit"].(map[string]any)
		return c
	}
	waitFor(t, "the target's circuit to open", 10*time.Second, func() bool { return circuit()["state"] == "open" })
	if c := circuit(); c["failures"] != float64(2) || c["since"] == nil {
		t.Errorf("open circuit %v", c)
	}
	if n := len(flaky.received()); n != 2 {
		t.Errorf("%d requests before the circuit opened, want 2", n)
	}
	_, body := call(t, "GET", base+"/metrics", nil)
	if text, _ := body["_raw"].(string); !strings.Contains(text, `hookgate_delivery_circuit_open{kind="workflow"} 1`) {
		t.Errorf("metrics lack the open circuit:\n%s", grepLines(text, "hookgate_delivery_circuit"))
	}
	// The probe after 1s fails (the third 503), the next after 2s succeeds;
	// then the backlog drains.
	waitFor(t, "the target's circuit to close", 15*time.Second, func() bool { return circuit()["state"] == "closed" })
	waitFor(t, "every webhook delivered", 10*time.Second, func() bool { return len(flaky.received()) == 3+3 })
	r := flaky.received()
	if gap := r[2].At.Sub(r[1].At); gap < 900*time.Millisecond {
		t.Errorf("probe %v after the circuit opened, want ≥ 1s", gap)
	}

	// The subscription's rate at its sink: 20/s over 3.4 s.
	const n = 70
	for i := range n {
		mustPublish(t, map[string]any{"topic": "job.done", "data": map[string]any{"i": i}})
	}
	waitFor(t, "paced deliveries", 15*time.Second, func() bool { return len(paced.received()) == n })
	got := paced.received()
	// The rate once the burst (2) is spent, over the remaining intervals.
	rate := float64(n-3) / got[n-1].At.Sub(got[2].At).Seconds()
	t.Logf("%.1f deliveries/s at the sink at rate_limit 20/s", rate)
	if rate < 16 || rate > 24 {
		t.Errorf("%.1f deliveries/s at rate_limit 20/s, want 20 ±20%%", rate)
	}
	_, body = call(t, "GET", base+"/metrics", nil)
	if text, _ := body["_raw"].(string); !strings.Contains(text, `hookgate_delivery_rate_limited_total{kind="subscription"}`) {
		t.Errorf("metrics lack the rate-limited waits:\n%s", grepLines(text, "hookgate_delivery"))
	}
	_, sub := apiCall(t, "GET", "/subscriptions/paced", nil)
	if sub["rate_limit"] != "20/s" || sub["circuit"] == nil {
		t.Errorf("subscription view %v", sub)
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
