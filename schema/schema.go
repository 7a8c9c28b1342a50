// Package schema implements payload contracts for incoming webhooks.
//
// A contract is either inferred from a sample payload ([FromSample]) or
// compiled from a JSON Schema document ([FromSchema]). Both are compiled once
// with github.com/santhosh-tekuri/jsonschema/v5 and then used to validate many
// payloads ([Contract.Validate]); a compiled [Contract] is safe for concurrent
// use. On the request path a compiled validator decides without the engine:
// for samples the sample validator (fast.go), errors included; for JSON
// Schemas a fail-fast validator (fastschema.go), whose refusals the engine
// validates again and reports. The engine stays the reference for both.
//
// Schema loading never touches the network: only local files (relative to the
// file the schema was read from) can be referenced; any other reference that
// is not embedded in the document is a compile error naming the reference.
//
// Format assertions are on (date-time, uri, email, …), content assertions are
// off, and the library's "uri-template" check is replaced by a full RFC 6570
// syntax check (see uritemplate.go).
package schema

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Error is one validation failure.
type Error struct {
	// Path is a JSON pointer (RFC 6901) into the instance, "" for the root,
	// e.g. "/user/id". For "missing properties" errors it points at the
	// object that lacks the properties.
	Path string `json:"path"`
	// Message is the validator's message, e.g. "expected string, but got number".
	Message string `json:"message"`
}

// Contract is a compiled payload contract, safe for concurrent use.
type Contract struct {
	sch *jsonschema.Schema
	doc json.RawMessage // indented JSON Schema document
	// sample validates sample contracts on the request path; sch stays the
	// reference (the two are held equal by tests).
	sample *sampleNode
	// fast decides JSON Schema contracts on the request path when the
	// schema allows it (fastschema.go); otherwise fallback says why not.
	fast     *fastNode
	fallback string
}

// inlineBase is the base URL of a schema that was not read from a file.
// Relative references resolve against it and are then refused by the loader,
// because such a schema has no directory.
const inlineBase = "inline:///schema.json"

// FromSchema compiles a JSON Schema document (drafts 4, 6, 7, 2019-09,
// 2020-12; default 2020-12 when $schema is absent).
//
// location is the file path the schema was read from ("" when it came from
// the API); $ref to relative local files resolve against its directory. When
// location is "" no file is ever read: every reference must be embedded in
// the document. Remote refs (http/https, or any non-file URL not embedded in
// the document) are never fetched: compiling fails with an error naming the
// ref.
func FromSchema(doc []byte, location string) (c *Contract, err error) {
	if err := checkSize(doc); err != nil { // limits.go
		return nil, err
	}
	if err := checkJSON(doc); err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, bytes.TrimSpace(doc), "", "  "); err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}

	base := inlineBase
	allowFiles := false
	if location != "" {
		abs, err := filepath.Abs(location)
		if err != nil {
			return nil, fmt.Errorf("schema location %q: %w", location, err)
		}
		base = (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
		allowFiles = true
	}

	sch, err := compile(base, doc, allowFiles)
	if err != nil {
		return nil, err
	}
	return newSchemaContract(sch, indented.Bytes()), nil
}

// compile compiles doc, registered under base, with this package's settings.
func compile(base string, doc []byte, allowFiles bool) (sch *jsonschema.Schema, err error) {
	// The library is not expected to panic on schemas that passed meta-schema
	// validation, but a schema is user input: never let it crash the server.
	defer func() {
		if r := recover(); r != nil {
			sch, err = nil, fmt.Errorf("invalid JSON Schema: %v", r)
		}
	}()

	c := newCompiler(allowFiles)
	if err := bound(c, doc); err != nil { // limits.go: size, depth, work
		return nil, err
	}
	if err := c.AddResource(base, bytes.NewReader(doc)); err != nil {
		return nil, fmt.Errorf("invalid JSON Schema: %w", err)
	}
	sch, err = c.Compile(base)
	if err != nil {
		return nil, schemaError(err)
	}
	return sch, nil
}

// Compiler settings, shared with the fast validator (fastschema.go), which
// must assert formats and content exactly where the engine does.
const (
	assertFormat  = true
	assertContent = false
)

// formatOverrides replace the library's format checks in our compilers.
var formatOverrides = map[string]func(any) bool{
	"uri-template": isURITemplate,
}

// newCompiler returns a compiler configured for hookgate: 2020-12 default,
// format assertions on, content assertions off, RFC 6570 uri-template check,
// and a loader that never touches the network.
func newCompiler(allowFiles bool) *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = assertFormat
	c.AssertContent = assertContent
	// Compiler.Formats takes precedence over the global jsonschema.Formats,
	// so these replacements are scoped to our compilers.
	maps.Copy(c.Formats, formatOverrides)
	c.LoadURL = func(s string) (io.ReadCloser, error) { return loadURL(s, allowFiles) }
	return c
}

// loadURL loads an external schema document. Only file URLs are ever
// loaded, and only for schemas that came from a file.
func loadURL(s string, allowFiles bool) (io.ReadCloser, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", s, err)
	}
	switch {
	case u.Scheme == "file" && allowFiles:
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("reference %q refused: file URL on a remote host", s)
		}
		f, err := os.Open(filepath.FromSlash(u.Path))
		if err != nil {
			return nil, fmt.Errorf("reference %q: %w", s, err)
		}
		return f, nil
	case u.Scheme == "file" || strings.HasPrefix(s, "inline:"):
		return nil, fmt.Errorf("reference %q refused: the schema was not loaded from a file, so it cannot reference other files; embed the definitions in the document", s)
	default:
		return nil, fmt.Errorf("remote reference %q refused: schemas are never fetched over the network; embed it in the document or reference a local file", s)
	}
}

// schemaError turns a compile error into a readable error.
func schemaError(err error) error {
	var se *jsonschema.SchemaError
	if errors.As(err, &se) {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			// The document does not conform to its draft's meta-schema.
			var parts []string
			for _, e := range flatten(ve) {
				p := e.Path
				if p == "" {
					p = "(root)"
				}
				parts = append(parts, p+": "+e.Message)
			}
			return fmt.Errorf("invalid JSON Schema: %s", strings.Join(parts, "; "))
		}
		if se.Err != nil {
			return fmt.Errorf("invalid JSON Schema: %s", strings.TrimPrefix(se.Err.Error(), "jsonschema: "))
		}
	}
	return fmt.Errorf("invalid JSON Schema: %w", err)
}

// Validate validates a value decoded with encoding/json into `any` (plain
// json.Unmarshal: float64 numbers; json.Number is accepted too).
// It returns nil when v is valid; otherwise a stable list (sorted by path
// then message, without duplicates) of leaf errors.
func (c *Contract) Validate(v any) []Error {
	if c.sample != nil {
		w := newWalker()
		defer w.release()
		c.sample.validate(v, w)
		if len(w.errs) == 0 {
			return nil
		}
		return sortErrors(w.errs)
	}
	if c.fast != nil && c.fast.accepts(v) {
		return nil
	}
	// Refused by the fast validator (or none): the engine decides and
	// reports.
	return c.validateSchema(v)
}

// validateSchema validates with the JSON Schema engine.
func (c *Contract) validateSchema(v any) (errs []Error) {
	// The engine panics on some values a schema may hold (an enum number
	// beyond big.Rat's exponent range met by a payload number): such a
	// payload is refused, the process stays up.
	defer func() {
		if r := recover(); r != nil {
			errs = []Error{{Path: "", Message: fmt.Sprintf("the schema cannot be evaluated on this payload: %v", r)}}
		}
	}()
	err := c.sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return flatten(ve)
	}
	// InfiniteLoopError (recursive schema) or InvalidJSONTypeError (v holds a
	// Go value that is not a JSON value).
	return []Error{{Path: "", Message: strings.TrimPrefix(err.Error(), "jsonschema: ")}}
}

// JSONSchema returns the effective JSON Schema as indented JSON: for a sample
// the inferred schema, for a schema the document as given. The returned slice
// is a copy.
func (c *Contract) JSONSchema() json.RawMessage {
	return bytes.Clone(c.doc)
}

// flatten collects the leaf causes of ve, sorted by path then message, with
// duplicates removed.
func flatten(ve *jsonschema.ValidationError) []Error {
	var out []Error
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Error{Path: instancePath(e.InstanceLocation), Message: normalizeMessage(e.Message)})
			return
		}
		for _, cause := range e.Causes {
			walk(cause)
		}
	}
	walk(ve)
	return sortErrors(out)
}

// sortErrors sorts errors by path then message and removes duplicates.
func sortErrors(out []Error) []Error {
	slices.SortFunc(out, func(a, b Error) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Message, b.Message))
	})
	return slices.Compact(out)
}

// instancePath converts the library's InstanceLocation (a JSON pointer whose
// tokens are additionally URL-path-escaped) into a plain JSON pointer.
func instancePath(loc string) string {
	if !strings.Contains(loc, "%") {
		return loc
	}
	// Tokens never contain a raw "/" (it is escaped as "~1" before
	// URL-escaping), so unescaping the whole string is safe.
	if p, err := url.PathUnescape(loc); err == nil {
		return p
	}
	return loc
}

// normalizeMessage makes messages that the library builds from map iteration
// deterministic: "additionalProperties 'b', 'a' not allowed" lists the names
// in sorted order.
func normalizeMessage(msg string) string {
	const prefix, suffix = "additionalProperties ", " not allowed"
	if !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, suffix) {
		return msg
	}
	list := msg[len(prefix) : len(msg)-len(suffix)]
	names, ok := splitQuoted(list)
	if !ok || len(names) < 2 {
		return msg
	}
	slices.Sort(names)
	return prefix + strings.Join(names, ", ") + suffix
}

// splitQuoted splits a list of single-quoted names separated by ", ", as
// produced by the library (a quote inside a name is escaped as \'). The names
// are returned with their quotes.
func splitQuoted(s string) ([]string, bool) {
	var names []string
	for len(s) > 0 {
		if s[0] != '\'' {
			return nil, false
		}
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '\'' {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, false
		}
		names = append(names, s[:end+1])
		s = s[end+1:]
		if len(s) > 0 {
			if !strings.HasPrefix(s, ", ") {
				return nil, false
			}
			s = s[2:]
		}
	}
	return names, true
}

// checkJSON reports whether data is one valid JSON value; the error says
// where the first syntax error is (line, column and byte offset).
func checkJSON(data []byte) error {
	if json.Valid(data) {
		return nil
	}
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		idx := int(se.Offset) - 1 // the offending byte
		if se.Offset >= int64(len(data)) && strings.HasPrefix(se.Error(), "unexpected end") {
			idx = len(data) // just past the end of the input
		}
		line, col := position(data, idx)
		return fmt.Errorf("line %d, column %d (offset %d): %s", line, col, se.Offset, se.Error())
	}
	if err == nil {
		err = errors.New("invalid JSON")
	}
	return err
}

// position converts byte index idx of data into a 1-based line and column
// (the column counts bytes).
func position(data []byte, idx int) (line, col int) {
	idx = max(0, min(idx, len(data)))
	before := data[:idx]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = idx - bytes.LastIndexByte(before, '\n')
	return line, col
}
