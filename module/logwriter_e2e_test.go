package module

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// bufferedLogCaddyfile is a gateway whose default log goes to file through
// `output buffered`, with one workflow forwarding to target.
func bufferedLogCaddyfile(storage, file, flushInterval, target string) string {
	return testCaddyfileWith(fmt.Sprintf(`
	log {
		output buffered {
			writer file %s
			flush_interval %s
		}
	}`, file, flushInterval), storage, "", fmt.Sprintf(`
	hookgate_ingress /hooks/* {
		workflow logged {
			sample ../examples/easylife/groupcreated.json
			key %s
			forward %s/logged
		}
	}`, pinnedKey, target))
}

// loggedMessages reads the log file's lines, each a JSON object, and
// returns their messages; a line that is not whole JSON fails the test.
func loggedMessages(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var entry struct {
			Msg string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("a log line is not whole JSON: %q: %v", line, err)
		}
		msgs = append(msgs, entry.Msg)
	}
	return msgs
}

func count(msgs []string, msg string) int {
	n := 0
	for _, m := range msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// TestBufferedLogEndToEnd runs a gateway whose log goes through `output
// buffered`: an event's lines reach the file within the flush interval; a
// reload keeps the buffer; lines still held when the configuration is
// unloaded are written then.
func TestBufferedLogEndToEnd(t *testing.T) {
	target := newSink(t)

	t.Run("written within the flush interval", func(t *testing.T) {
		file := t.TempDir() + "/gateway.log"
		tc := newTester(t)
		tc.InitServer(bufferedLogCaddyfile(t.TempDir(), file, "50ms", target.URL), "caddyfile")
		http.DefaultClient.CloseIdleConnections()
		if status, body := call(t, "POST", base+"/hooks/logged/"+pinnedKey, easylife(t, "groupcreated")); status != http.StatusAccepted {
			t.Fatalf("webhook: %d %v", status, body)
		}
		waitFor(t, "the event's two lines in the log file", 5*time.Second, func() bool {
			msgs := loggedMessages(t, file)
			return count(msgs, "event accepted") == 1 && count(msgs, "delivery succeeded") == 1
		})
	})

	t.Run("still buffered after a reload, written when the configuration is unloaded", func(t *testing.T) {
		file := t.TempDir() + "/gateway.log"
		storage := t.TempDir()
		tc := newTester(t)
		tc.InitServer(bufferedLogCaddyfile(storage, file, "1m", target.URL+"/before-reload"), "caddyfile")
		// A reload keeping the log's settings keeps its buffer: the old
		// configuration's cleanup must not write it out for good.
		tc.InitServer(bufferedLogCaddyfile(storage, file, "1m", target.URL), "caddyfile")
		http.DefaultClient.CloseIdleConnections()
		before := len(target.received())
		if status, body := call(t, "POST", base+"/hooks/logged/"+pinnedKey, easylife(t, "groupcreated")); status != http.StatusAccepted {
			t.Fatalf("webhook: %d %v", status, body)
		}
		waitFor(t, "the delivery", 5*time.Second, func() bool { return len(target.received()) > before })
		time.Sleep(200 * time.Millisecond) // the delivery's line is logged after the answer
		if n := count(loggedMessages(t, file), "event accepted"); n != 0 {
			t.Fatalf("the line was written before the flush interval (%d found): nothing is buffered", n)
		}
		unloadCaddy(t)
		msgs := loggedMessages(t, file)
		if count(msgs, "event accepted") != 1 || count(msgs, "delivery succeeded") != 1 {
			t.Fatalf("after the unload the log holds %q, want the event's two lines", msgs)
		}
	})
}
