package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// obj is a JSON object as the API answers it; the CLI depends on its
// shape only, not on the gateway's types.
type obj = map[string]any

// decode parses an answer into v (UseNumber keeps integers exact).
func decode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("unexpected answer from the API: %w", err)
	}
	return nil
}

// str formats the value at a path of nested objects ("circuit.state") for
// a table cell: "" for none, lists of scalars joined by commas, other
// objects as compact JSON.
func str(o obj, path string) string {
	var v any = o
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(obj)
		if !ok {
			return ""
		}
		v = m[part]
	}
	return format(v)
}

func format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if _, ok := e.(obj); ok {
				b, _ := json.Marshal(x)
				return string(b)
			}
			parts = append(parts, format(e))
		}
		return strings.Join(parts, ", ")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// list returns the objects of an answer's list field.
func list(o obj, field string) []obj {
	arr, _ := o[field].([]any)
	out := make([]obj, 0, len(arr))
	for _, e := range arr {
		if m, ok := e.(obj); ok {
			out = append(out, m)
		}
	}
	return out
}

// table writes rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			r[i] = oneLine(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// oneLine keeps a cell on one line and short.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	if s == "" {
		s = "-"
	}
	return s
}

// fields writes an object as "name: value" lines: the named fields first
// (when present), then every other field in name order.
func fields(w io.Writer, o obj, first ...string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	done := map[string]bool{}
	for _, k := range first {
		done[k] = true
		if v, ok := o[k]; ok && v != nil {
			fmt.Fprintf(tw, "%s:\t%s\n", k, format(v))
		}
	}
	rest := make([]string, 0, len(o))
	for k := range o {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		if o[k] != nil {
			fmt.Fprintf(tw, "%s:\t%s\n", k, format(o[k]))
		}
	}
	return tw.Flush()
}

// since formats an RFC 3339 time of an answer as a short local clock time,
// or the value as is.
func clock(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// lastAttempt returns a delivery record's last attempt (nil when none).
func lastAttempt(rec obj) obj {
	atts := list(rec, "attempts")
	if len(atts) == 0 {
		return nil
	}
	return atts[len(atts)-1]
}

// owner is a delivery's workflow or subscription, as "workflow=x" or
// "subscription=y".
func owner(rec obj) string {
	if w := str(rec, "workflow_id"); w != "" {
		return "workflow=" + w
	}
	if s := str(rec, "subscription_id"); s != "" {
		return "subscription=" + s
	}
	return "destination=" + str(rec, "destination")
}

// deliveryRows are the table rows of delivery records.
func deliveryRows(recs []obj) [][]string {
	rows := make([][]string, 0, len(recs))
	for _, r := range recs {
		code, errText := "", ""
		if a := lastAttempt(r); a != nil {
			code, errText = str(a, "status_code"), str(a, "error")
		}
		if reason := str(r, "reason"); reason != "" {
			errText = reason
		}
		rows = append(rows, []string{
			str(r, "id"), str(r, "event_id"), strings.SplitN(owner(r), "=", 2)[1], str(r, "status"),
			strconv.Itoa(len(list(r, "attempts"))), code, clock(str(r, "updated_at")), errText,
		})
	}
	return rows
}

var deliveryHeader = []string{"ID", "EVENT", "WORKFLOW/SUBSCRIPTION", "STATUS", "ATTEMPTS", "LAST CODE", "UPDATED", "ERROR"}
