package filters

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hookgate/hookgate/internal/jsonvalue"
)

// The envelope hot path marshals decoded JSON (map[string]any, []any,
// string, float64, bool, nil) and the maps and ints built by expressions.
// jsonWriter encodes those types itself, byte for byte as encoding/json does
// with SetEscapeHTML(false) (map keys sorted, no trailing newline), without
// reflection and with pooled scratch space; any other value is handed to
// encoding/json.

// maxDepth bounds nesting (encoding/json decodes up to 10000 levels), as a
// guard against cyclic data built in Go.
const maxDepth = 10000

var errTooDeep = errors.New("json: value nested too deeply (cycle?)")

// jsonWriter holds the output and the scratch space for sorting map keys.
type jsonWriter struct {
	buf  []byte
	keys []string // a stack of key ranges, one per open map
	enc  *json.Encoder
	fb   bytes.Buffer // fallback encoder output
	// limit, when positive, bounds the output: value fails with
	// errEnvelope once it is over, so that a value built of shared
	// references costs no more than limit to refuse.
	limit int
}

var writerPool = sync.Pool{New: func() any { return new(jsonWriter) }}

// maxPooled is the largest buffer kept in the pool.
const maxPooled = 1 << 20

// marshal encodes v as JSON (see jsonWriter) and returns a slice owned by
// the caller.
func marshal(v any) ([]byte, error) {
	return marshalLimit(v, 0)
}

// marshalLimit is marshal failing with an envelope_size *LimitError when
// the output is over limit bytes (no bound when limit is 0).
func marshalLimit(v any, limit int) ([]byte, error) {
	w := writerPool.Get().(*jsonWriter)
	w.buf = w.buf[:0]
	w.limit = limit
	err := w.value(v, 0)
	if err == errEnvelope || (err == nil && limit > 0 && len(w.buf) > limit) {
		err = &LimitError{Limit: errEnvelope.Limit, Max: int64(limit)}
	}
	var out []byte
	if err == nil {
		out = bytes.Clone(w.buf)
	}
	w.release()
	return out, err
}

// marshalStandard encodes the standard envelope {"type","timestamp","data"}.
func marshalStandard(topic string, t time.Time, data any) ([]byte, error) {
	w := writerPool.Get().(*jsonWriter)
	w.limit = 0
	w.buf = append(w.buf[:0], `{"type":`...)
	w.buf = jsonvalue.AppendString(w.buf, topic)
	w.buf = append(w.buf, `,"timestamp":`...)
	err := w.value(t.UTC(), 0)
	if err == nil {
		w.buf = append(w.buf, `,"data":`...)
		err = w.value(data, 0)
	}
	var out []byte
	if err == nil {
		w.buf = append(w.buf, '}')
		out = bytes.Clone(w.buf)
	}
	w.release()
	return out, err
}

func (w *jsonWriter) release() {
	if cap(w.buf) > maxPooled || w.fb.Cap() > maxPooled {
		return
	}
	clear(w.keys[:cap(w.keys)])
	w.keys = w.keys[:0]
	writerPool.Put(w)
}

func (w *jsonWriter) value(v any, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	if w.limit > 0 && len(w.buf) > w.limit {
		return errEnvelope
	}
	switch x := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case string:
		w.buf = jsonvalue.AppendString(w.buf, x)
	case float64:
		return w.float(x)
	case bool:
		w.buf = strconv.AppendBool(w.buf, x)
	case int:
		w.buf = strconv.AppendInt(w.buf, int64(x), 10)
	case int64:
		w.buf = strconv.AppendInt(w.buf, x, 10)
	case map[string]any:
		return w.object(x, depth)
	case []any:
		if x == nil {
			w.buf = append(w.buf, "null"...)
			return nil
		}
		w.buf = append(w.buf, '[')
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(e, depth+1); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ']')
	case time.Time:
		// As time.Time.MarshalJSON, without its allocation, for the UTC
		// times of the envelopes; anything else goes to MarshalJSON.
		if y := x.Year(); y < 0 || y >= 10000 || x.Location() != time.UTC {
			return w.fallback(v)
		}
		w.buf = append(w.buf, '"')
		w.buf = x.AppendFormat(w.buf, time.RFC3339Nano)
		w.buf = append(w.buf, '"')
	default:
		return w.fallback(v)
	}
	return nil
}

func (w *jsonWriter) object(m map[string]any, depth int) error {
	if m == nil {
		w.buf = append(w.buf, "null"...)
		return nil
	}
	start := len(w.keys)
	for k := range m {
		w.keys = append(w.keys, k)
	}
	end := len(w.keys)
	slices.Sort(w.keys[start:end])
	w.buf = append(w.buf, '{')
	for i := start; i < end; i++ {
		if i > start {
			w.buf = append(w.buf, ',')
		}
		k := w.keys[i] // re-read: nested maps may grow w.keys
		w.buf = jsonvalue.AppendString(w.buf, k)
		w.buf = append(w.buf, ':')
		if err := w.value(m[k], depth+1); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, '}')
	clear(w.keys[start:end])
	w.keys = w.keys[:start]
	return nil
}

// float encodes f as encoding/json does (ES6 number formatting).
func (w *jsonWriter) float(f float64) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(w.buf, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	w.buf = b
	return nil
}

// fallback encodes v with encoding/json (no HTML escaping).
func (w *jsonWriter) fallback(v any) error {
	if w.enc == nil {
		w.enc = json.NewEncoder(&w.fb)
		w.enc.SetEscapeHTML(false)
	}
	w.fb.Reset()
	if err := w.enc.Encode(v); err != nil {
		return err
	}
	w.buf = append(w.buf, bytes.TrimSuffix(w.fb.Bytes(), []byte{'\n'})...)
	return nil
}
