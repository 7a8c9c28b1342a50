package module

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Issue #8, finding 6: the first requests a handler serves arrive together
// (a burst right after a start or a reload). Run under -race, this drives
// one fresh ingress handler from many goroutines at once, on a forwarding
// and a passthrough workflow.
func TestIngressConcurrentFirstRequests(t *testing.T) {
	target := newSink(t)
	app := newSink(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow fwd {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			forward %[2]s/fwd
		}
		workflow pass {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
		}
	}
	reverse_proxy %[3]s
`, pinnedKey, target.URL, strings.TrimPrefix(app.URL, "http://")))

	body := easylife(t, "groupcreated")
	const n = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			wf := "fwd"
			if i%2 == 1 {
				wf = "pass"
			}
			resp, err := http.Post(base+"/hooks/"+wf+"/"+pinnedKey, "application/json", bytesReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	for i, s := range statuses {
		want := http.StatusAccepted
		if i%2 == 1 {
			want = http.StatusOK // the app's answer
		}
		if s != want {
			t.Errorf("request %d: status %d, want %d", i, s, want)
		}
	}
	if got := len(app.received()); got != n/2 {
		t.Errorf("the app received %d passthrough requests, want %d", got, n/2)
	}
}
