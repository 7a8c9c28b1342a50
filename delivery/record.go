package delivery

import "time"

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Attempt is one HTTP attempt of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
	// Response is the first 4 KiB of the response body.
	Response string `json:"response,omitempty"`
	// RequestHeaders are the headers the attempt sent, with signatures,
	// secrets and credential-like values redacted.
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
}

// Record is the state and history of one delivery: one event to one
// destination. It is the fold of the delivery's entries in the delivery log
// (see records.go).
type Record struct {
	// ID is "<destination>.<event id>".
	ID             string     `json:"id"`
	EventID        string     `json:"event_id"`
	SubscriptionID string     `json:"subscription_id,omitempty"`
	WorkflowID     string     `json:"workflow_id,omitempty"`
	Destination    string     `json:"destination"`
	Status         string     `json:"status"`
	Attempts       []Attempt  `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	// Reason says why a delivery failed without (more) attempts.
	Reason string `json:"reason,omitempty"`
	// Replays counts manual retries; ReplayBase is the number of attempts
	// made before the last one (attempt budgets restart there).
	Replays    int       `json:"replays,omitempty"`
	ReplayBase int       `json:"replay_base,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// recordID is the key of the delivery of event to destination.
func recordID(dest, event string) string { return dest + "." + event }
