package filters

import (
	"strconv"
)

// KindOrderKey labels errors of ordering keys.
const KindOrderKey = "order_key"

// MaxKeyBytes bounds an ordering key: a longer value is cut to this many
// bytes (events whose keys share their first MaxKeyBytes bytes are ordered
// together, which is stricter, never looser).
const MaxKeyBytes = 256

// EventKey is a compiled ordering key (a subscription's or workflow
// target's order_key): an expr expression over an [Event], like a
// subscription predicate, whose value (a string or a number) names the
// events that are delivered one at a time, in order. It is immutable and
// safe for concurrent use.
type EventKey struct {
	p *program
}

// CompileEventKey compiles an ordering key, with the checks and bounds of
// [CompileEventPredicate]; the result may be of any type when compiled (a
// field of the data is known only at run time).
func CompileEventKey(src string) (*EventKey, error) {
	p, err := compile(KindOrderKey, src, src, eventEnv{})
	if err != nil {
		return nil, err
	}
	return &EventKey{p: p}, nil
}

// Key evaluates the key against e. A string is the key as is (cut to
// MaxKeyBytes), a number its shortest decimal form. An evaluation error, a
// missing value (nil) or a value of another type returns "" and an error
// (an [*Error]): the caller decides what such an event's key is.
func (k *EventKey) Key(e *Event) (string, error) {
	out, err := k.p.run(e)
	if err != nil {
		return "", err
	}
	var s string
	switch v := out.(type) {
	case string:
		s = v
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(v), 'f', -1, 32)
	case int:
		s = strconv.Itoa(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case int32:
		s = strconv.FormatInt(int64(v), 10)
	case uint64:
		s = strconv.FormatUint(v, 10)
	case uint:
		s = strconv.FormatUint(uint64(v), 10)
	default:
		msg := "expected a string or a number, but got nil"
		if out != nil {
			msg = "expected a string or a number, but got " + typeName(out)
		}
		return "", &Error{Kind: k.p.kind, Expr: k.p.src, Line: 1, Column: 1, Message: msg}
	}
	if len(s) > MaxKeyBytes {
		s = s[:MaxKeyBytes]
	}
	return s, nil
}

// String returns the expression as given ("" for a nil key).
func (k *EventKey) String() string {
	if k == nil {
		return ""
	}
	return k.p.src
}

func typeName(v any) string {
	switch v.(type) {
	case bool:
		return "bool"
	case map[string]any:
		return "map"
	case []any:
		return "array"
	}
	return "a value of another type"
}
