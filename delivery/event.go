// Package delivery is hookgate's delivery engine: it writes accepted events to
// the JetStream event stream, fans each one out to its destinations (workflow
// targets and subscriptions) as messages of the delivery work queue, and makes
// signed HTTP attempts with retries, recording every attempt.
//
// The package imports nothing from Caddy.
package delivery

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/registry"
)

// Event is an accepted event: a webhook received on a workflow, or an event
// the app published on a topic.
type Event struct {
	// ID identifies the event; it is the webhook-id of every delivery.
	ID string `json:"id"`
	// Topic of a published event.
	Topic string `json:"topic,omitempty"`
	// Workflow a received webhook came in on.
	Workflow string `json:"workflow,omitempty"`
	// Data is the payload, exactly as received.
	Data json.RawMessage `json:"data"`
	// Tenant is the system the event happened on (Orange Logic).
	Tenant string `json:"tenant,omitempty"`
	// User who caused the event.
	User string `json:"user,omitempty"`
	// Time the event was accepted.
	Time time.Time `json:"time"`
	// Traceparent is the W3C trace context the event came with.
	Traceparent string `json:"traceparent,omitempty"`
	// Request, on a fallback event, is the passthrough request the app did
	// not take, delivered again to the workflow's fallback (fallback.go).
	// Not shown by the API: its headers may carry the sender's credentials.
	Request *Request `json:"-"`
}

// Message header names of events and deliveries in JetStream.
const (
	hdrID          = "Hookgate-Id"
	hdrTopic       = "Hookgate-Topic"
	hdrWorkflow    = "Hookgate-Workflow"
	hdrTenant      = "Hookgate-Tenant"
	hdrUser        = "Hookgate-User"
	hdrTime        = "Hookgate-Time"
	hdrTraceparent = "Hookgate-Traceparent"
	hdrDest        = "Hookgate-Destination"
	// hdrEventSeq is the event's sequence in the event stream, on queued
	// deliveries and records.
	hdrEventSeq = "Hookgate-Event-Seq"
	// hdrReplay numbers manual retries of a delivery.
	hdrReplay = "Hookgate-Replay"
	// hdrRefanned marks deliveries queued by a fan-out that ran again
	// (after a crash): they may have been queued, and delivered, before.
	hdrRefanned = "Hookgate-Refanned"
)

// NewEventID returns a random event id: "evt_" and 24 hex digits. It names
// requests that are not stored (passthrough); stored events get an id from
// their place in the event stream (EventRef) or keep the one they came with.
func NewEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// EventRef is the id of the event stored at seq in the event stream of the
// given epoch: "evt_", 8 hex digits of epoch and 16 of seq. It locates the
// event without an index: no per-event subject or key is kept.
func EventRef(epoch uint32, seq uint64) string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[:4], epoch)
	binary.BigEndian.PutUint64(b[4:], seq)
	return "evt_" + hex.EncodeToString(b[:])
}

// ParseEventRef returns the epoch and sequence of an id made by EventRef.
func ParseEventRef(id string) (epoch uint32, seq uint64, ok bool) {
	h, found := strings.CutPrefix(id, "evt_")
	if !found || len(h) != 24 {
		return 0, 0, false
	}
	var b [12]byte
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint64(b[4:]), true
}

// message encodes the event as a NATS message on subject: the data is the
// body, the rest goes in headers.
func (e *Event) message(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = e.Data
	h := m.Header
	if e.ID != "" {
		h.Set(hdrID, e.ID)
	}
	if e.Topic != "" {
		h.Set(hdrTopic, e.Topic)
	}
	if e.Workflow != "" {
		h.Set(hdrWorkflow, e.Workflow)
	}
	if e.Tenant != "" {
		h.Set(hdrTenant, e.Tenant)
	}
	if e.User != "" {
		h.Set(hdrUser, e.User)
	}
	if e.Traceparent != "" {
		h.Set(hdrTraceparent, e.Traceparent)
	}
	if e.Request != nil {
		h.Set(hdrRequest, e.Request.encode())
	}
	h.Set(hdrTime, e.Time.UTC().Format(time.RFC3339Nano))
	return m
}

// eventFromMessage decodes what message wrote. An event stored without an id
// gets its id from its sequence (the caller's job: see Pipeline.eventOf).
func eventFromMessage(h nats.Header, data []byte) (*Event, error) {
	e := &Event{
		ID:          h.Get(hdrID),
		Topic:       h.Get(hdrTopic),
		Workflow:    h.Get(hdrWorkflow),
		Tenant:      h.Get(hdrTenant),
		User:        h.Get(hdrUser),
		Traceparent: h.Get(hdrTraceparent),
		Data:        data,
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get(hdrTime))
	if err != nil {
		return nil, fmt.Errorf("event %s: bad time: %w", e.ID, err)
	}
	e.Time = t
	if v := h.Get(hdrRequest); v != "" {
		if e.Request, err = decodeRequest(v); err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	return e, nil
}

// Validate checks the fields a publisher sets.
func (e *Event) Validate() error {
	if e.ID != "" && !registry.ValidID(e.ID) {
		return fmt.Errorf("id %q must be 1 to 128 letters, digits, '-' or '_'", e.ID)
	}
	return nil
}
