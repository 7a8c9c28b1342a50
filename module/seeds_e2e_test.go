package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// rawCall makes a request and returns the answer's status, headers and body
// as they came.
func rawCall(t *testing.T, method, url string, body []byte, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// vivaEngageFilter forwards Teams and SharePoint sites: a Viva Engage
// community also arrives as groupcreated, told apart by its Yammer URL
// (group.metadata.additionalData.yUrl), as in examples/easylife.
const vivaEngageFilter = "`" + `body.eventType == "sharepointcreated" || (body.eventType == "groupcreated" && body.group?.metadata?.additionalData?.yUrl == nil)` + "`"

// TestSeedEasyLifeRespond follows easylife-provisioning-payloads.txt: "A
// status 200 OK is expected with no body." Every payload of the seed gets
// exactly that, whether forwarded, filtered or a retry; only the Team and
// the SharePoint site reach the app (the Viva Engage community, also
// "groupcreated", does not).
func TestSeedEasyLifeRespond(t *testing.T) {
	app := newSink(t)
	startCaddy(t, t.TempDir(), "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow easylife {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			filter %[2]s
			idempotency_header X-Request-Id
			respond 200
			forward %[3]s/provisioned
		}
		workflow default-answers {
			sample ../examples/easylife/groupcreated.json
			key %[1]s
			filter %[2]s
			respond filtered 204
			respond accepted 201 "{\"ok\":true}"
			forward %[3]s/default
		}
	}
`, pinnedKey, vivaEngageFilter, app.URL))

	for i, name := range easylifeNames {
		for _, try := range []string{"first", "retry"} {
			status, hdr, body := rawCall(t, "POST", base+"/hooks/easylife/"+pinnedKey, easylife(t, name), "X-Request-Id", fmt.Sprint("req-", i))
			if status != http.StatusOK || len(body) != 0 || hdr.Get("Content-Type") != "" {
				t.Errorf("%s (%s): %d %q Content-Type %q, want 200 OK with no body", name, try, status, body, hdr.Get("Content-Type"))
			}
		}
	}
	waitFor(t, "the Team and the SharePoint site", 10*time.Second, func() bool { return len(app.received()) >= 2 })
	time.Sleep(300 * time.Millisecond) // nothing else arrives
	got := app.received()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2 (Team, SharePoint site)", len(got))
	}
	var types []string
	for _, r := range got {
		var p struct {
			EventType string `json:"eventType"`
			Group     struct {
				DisplayName string `json:"displayName"`
			} `json:"group"`
		}
		_ = json.Unmarshal(r.Body, &p)
		types = append(types, p.EventType+"/"+p.Group.DisplayName)
	}
	if fmt.Sprint(types) != "[groupcreated/Learning Team sharepointcreated/Intranet Site]" &&
		fmt.Sprint(types) != "[sharepointcreated/Intranet Site groupcreated/Learning Team]" {
		t.Errorf("delivered %v", types)
	}

	// Per kind: a JSON body is sent as application/json; a kind left out
	// keeps its default answer.
	tests := []struct {
		name, payload string
		status        int
		body, ctype   string
	}{
		{"accepted", "groupcreated", 201, `{"ok":true}`, "application/json"},
		{"filtered", "plannercreated", 204, "", ""},
	}
	for _, tc := range tests {
		status, hdr, body := rawCall(t, "POST", base+"/hooks/default-answers/"+pinnedKey, easylife(t, tc.payload))
		if status != tc.status || string(body) != tc.body || hdr.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %d %q %q, want %d %q %q", tc.name, status, body, hdr.Get("Content-Type"), tc.status, tc.body, tc.ctype)
		}
	}
}
