package delivery

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/engine"
)

func TestNewEventID(t *testing.T) {
	re := regexp.MustCompile(`^evt_[0-9a-f]{24}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewEventID()
		if !re.MatchString(id) {
			t.Fatalf("NewEventID = %q", id)
		}
		if seen[id] {
			t.Fatalf("repeated id %q", id)
		}
		seen[id] = true
		if (&Event{ID: id}).Validate() != nil {
			t.Fatalf("generated id %q does not validate", id)
		}
	}
}

func TestEventMessageRoundTrip(t *testing.T) {
	tests := []Event{
		{
			ID: "773bdd63-29be-4e77-8f39-fb0b572a7a88", Topic: "document.deleted",
			Data: json.RawMessage(`{"RecordID": "2QDTWAW4499"}`), Tenant: "ZZ1", User: "u-1",
			Time:        time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		{ID: "evt_1", Workflow: "provisioning", Data: json.RawMessage("  {\"a\":\n1}  "), Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))},
		{ID: "evt_2", Topic: "t", Time: time.Unix(0, 1)}, // no data
	}
	for _, ev := range tests {
		m := ev.message(engine.SubjectFanout)
		if m.Subject != engine.SubjectFanout {
			t.Errorf("subject %q", m.Subject)
		}
		if string(m.Data) != string(ev.Data) {
			t.Errorf("data %q, want the payload exactly", m.Data)
		}
		got, err := eventFromMessage(m.Header, m.Data)
		if err != nil {
			t.Fatalf("eventFromMessage(%s): %v", ev.ID, err)
		}
		if got.ID != ev.ID || got.Topic != ev.Topic || got.Workflow != ev.Workflow || got.Tenant != ev.Tenant ||
			got.User != ev.User || got.Traceparent != ev.Traceparent || string(got.Data) != string(ev.Data) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
		}
		if !got.Time.Equal(ev.Time) || got.Time.Location() != time.UTC {
			t.Errorf("time %v, want %v in UTC", got.Time, ev.Time)
		}
		// Optional fields leave no empty header behind.
		for _, h := range []string{hdrTopic, hdrWorkflow, hdrTenant, hdrUser, hdrTraceparent} {
			if vs, ok := m.Header[h]; ok && (len(vs) != 1 || vs[0] == "") {
				t.Errorf("header %s = %q", h, vs)
			}
		}
	}
}

func TestEventFromMessageErrors(t *testing.T) {
	h := nats.Header{}
	h.Set(hdrTime, time.Now().Format(time.RFC3339Nano))
	if ev, err := eventFromMessage(h, nil); err != nil || ev.ID != "" {
		t.Errorf("no id (the id then comes from the sequence): %+v, %v", ev, err)
	}
	h.Set(hdrID, "e1")
	h.Set(hdrTime, "yesterday")
	if _, err := eventFromMessage(h, nil); err == nil || !strings.Contains(err.Error(), "e1") {
		t.Errorf("bad time: %v", err)
	}
	h.Del(hdrTime)
	if _, err := eventFromMessage(h, nil); err == nil {
		t.Error("no time accepted")
	}
}

func TestEventValidate(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"", true}, // generated on publish
		{"evt_123", true},
		{"773bdd63-29be-4e77-8f39-fb0b572a7a88", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"a.b", false}, // a dot would break subjects and record ids
		{"a b", false},
		{"a*", false},
		{"a>", false},
	}
	for _, tc := range tests {
		err := (&Event{ID: tc.id}).Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestEventRef(t *testing.T) {
	for _, tc := range []struct {
		epoch uint32
		seq   uint64
	}{{0, 0}, {1, 1}, {0x6553f100, 12345}, {^uint32(0), ^uint64(0)}} {
		id := EventRef(tc.epoch, tc.seq)
		if (&Event{ID: id}).Validate() != nil || len(id) != 28 {
			t.Errorf("EventRef(%d, %d) = %q: not a valid id", tc.epoch, tc.seq, id)
		}
		epoch, seq, ok := ParseEventRef(id)
		if !ok || epoch != tc.epoch || seq != tc.seq {
			t.Errorf("ParseEventRef(%q) = %d, %d, %v", id, epoch, seq, ok)
		}
	}
	for _, bad := range []string{"", "evt_", "evt_xyz", "evt_0000000000000000000000000", "ev_000000000000000000000000", "evt_00000000000000000000000g"} {
		if _, _, ok := ParseEventRef(bad); ok {
			t.Errorf("ParseEventRef(%q) ok", bad)
		}
	}
}

func TestRecordID(t *testing.T) {
	if got := recordID("sub_1", "evt_2"); got != "sub_1.evt_2" {
		t.Errorf("recordID = %q", got)
	}
	if got := recordID("wf=w=0", "e"); got != "wf=w=0.e" {
		t.Errorf("recordID = %q", got)
	}
}
