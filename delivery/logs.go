package delivery

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The log lines of events and deliveries: one per accepted event, one per
// attempt that failed, one per delivery that ended. They name events,
// deliveries, workflows, subscriptions and destinations by id; they never
// hold a key, a secret, a header value, a body or a target URL (whose query
// may carry a credential).

// logAccepted logs an event written to the stream (not a duplicate).
func (p *Pipeline) logAccepted(ev *Event, destinations int) {
	ce := p.log.Check(zapcore.InfoLevel, "event accepted")
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.String("event", ev.ID)}
	if ev.Workflow != "" {
		fields = append(fields, zap.String("workflow", ev.Workflow))
	} else {
		fields = append(fields, zap.String("topic", ev.Topic))
	}
	ce.Write(append(fields, zap.Int("destinations", destinations))...)
}

// logAttempt logs an attempt: a success at Info, a failed attempt that will
// be retried at Warn, a failed delivery at Error.
func (p *Pipeline) logAttempt(d *delivery, res *Result, attempt int, outcome string) {
	level, msg := zapcore.InfoLevel, "delivery succeeded"
	switch outcome {
	case StatusSucceeded:
	case StatusFailed:
		level, msg = zapcore.ErrorLevel, "delivery failed"
	default:
		level, msg = zapcore.WarnLevel, "delivery attempt failed"
	}
	ce := p.log.Check(level, msg)
	if ce == nil {
		return
	}
	fields := d.logFields()
	if res.StatusCode != 0 {
		fields = append(fields, zap.Int("status", res.StatusCode))
	}
	fields = append(fields, zap.Int("attempt", attempt), zap.Duration("duration", res.Duration))
	if d.replay > 0 {
		fields = append(fields, zap.Int("replay", d.replay)) // attempts count again from 1 in a replay
	}
	if outcome != StatusSucceeded {
		fields = append(fields, zap.String("error", attemptError(res)))
	}
	if outcome == StatusFailed {
		reason := fmt.Sprintf("gave up after %d attempts", attempt)
		if res.StatusCode == http.StatusGone && d.subID != "" {
			reason = "the subscriber answered 410 Gone: subscription disabled"
		}
		fields = append(fields, zap.String("reason", reason))
	}
	ce.Write(fields...)
}

// logNotAttempted logs a delivery that failed without an attempt.
func (p *Pipeline) logNotAttempted(d *delivery, reason string) {
	if ce := p.log.Check(zapcore.ErrorLevel, "delivery failed"); ce != nil {
		ce.Write(append(d.logFields(), zap.Int("attempt", d.made), zap.String("reason", reason))...)
	}
}

// logFields name a delivery: event, delivery, workflow or subscription,
// destination.
func (d *delivery) logFields() []zap.Field {
	fields := make([]zap.Field, 0, 10)
	fields = append(fields, zap.String("event", d.ev.ID), zap.String("delivery", d.id()))
	if d.workflow != "" {
		fields = append(fields, zap.String("workflow", d.workflow))
	}
	if d.subID != "" {
		fields = append(fields, zap.String("subscription", d.subID))
	}
	return append(fields, zap.String("destination", d.destID))
}

// attemptError is why an attempt failed, without the request URL that
// net/http puts in its errors.
func attemptError(res *Result) string {
	if res.Err == nil {
		return http.StatusText(res.StatusCode)
	}
	var ue *url.Error
	if errors.As(res.Err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return res.Err.Error()
}
