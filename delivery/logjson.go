package delivery

import (
	"slices"
	"strconv"
	"time"

	"github.com/hookgate/hookgate/internal/jsonvalue"
)

// The delivery log's entries are written for every attempt: they are
// encoded here, byte for byte as encoding/json (without HTML escaping)
// encodes them, without reflection and without an allocation per header.
// They are read back with encoding/json.

// entrySize is room enough for most entries: an attempt with its headers.
const entrySize = 768

// marshalEntries returns the JSON array of entries.
func marshalEntries(entries []*logEntry) []byte {
	return appendEntries(make([]byte, 0, entrySize*len(entries)+2), entries)
}

// appendEntries appends the JSON array of entries to dst.
func appendEntries(dst []byte, entries []*logEntry) []byte {
	dst = append(dst, '[')
	for i, e := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = e.appendJSON(dst)
	}
	return append(dst, ']')
}

// appendJSON appends e as a JSON object to dst.
func (e *logEntry) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"delivery":`...)
	dst = jsonvalue.AppendString(dst, e.Delivery)
	dst = append(dst, `,"event_id":`...)
	dst = jsonvalue.AppendString(dst, e.EventID)
	dst = append(dst, `,"event_seq":`...)
	dst = strconv.AppendUint(dst, e.EventSeq, 10)
	dst = append(dst, `,"destination":`...)
	dst = jsonvalue.AppendString(dst, e.Destination)
	if e.SubscriptionID != "" {
		dst = append(dst, `,"subscription_id":`...)
		dst = jsonvalue.AppendString(dst, e.SubscriptionID)
	}
	if e.WorkflowID != "" {
		dst = append(dst, `,"workflow_id":`...)
		dst = jsonvalue.AppendString(dst, e.WorkflowID)
	}
	dst = append(dst, `,"status":`...)
	dst = jsonvalue.AppendString(dst, e.Status)
	if e.Attempt != nil {
		dst = append(dst, `,"attempt":`...)
		dst = e.Attempt.appendJSON(dst)
	}
	if e.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = jsonvalue.AppendString(dst, e.Reason)
	}
	if e.NextAttemptAt != nil {
		dst = append(dst, `,"next_attempt_at":`...)
		dst = appendTime(dst, *e.NextAttemptAt)
	}
	if e.Replay != 0 {
		dst = append(dst, `,"replay":`...)
		dst = strconv.AppendInt(dst, int64(e.Replay), 10)
	}
	dst = append(dst, `,"at":`...)
	dst = appendTime(dst, e.At)
	return append(dst, '}')
}

// appendJSON appends a as a JSON object to dst, its headers by name.
func (a *Attempt) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"at":`...)
	dst = appendTime(dst, a.At)
	if a.StatusCode != 0 {
		dst = append(dst, `,"status_code":`...)
		dst = strconv.AppendInt(dst, int64(a.StatusCode), 10)
	}
	dst = append(dst, `,"duration_ms":`...)
	dst = strconv.AppendInt(dst, a.DurationMS, 10)
	if a.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = jsonvalue.AppendString(dst, a.Error)
	}
	if a.Response != "" {
		dst = append(dst, `,"response":`...)
		dst = jsonvalue.AppendString(dst, a.Response)
	}
	if len(a.RequestHeaders) > 0 {
		var stack [32]string
		names := stack[:0]
		for name := range a.RequestHeaders {
			names = append(names, name)
		}
		slices.Sort(names)
		dst = append(dst, `,"request_headers":{`...)
		for i, name := range names {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonvalue.AppendString(dst, name)
			dst = append(dst, ':')
			dst = jsonvalue.AppendString(dst, a.RequestHeaders[name])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendTime appends t as encoding/json does: RFC 3339 with nanoseconds,
// quoted.
func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}
