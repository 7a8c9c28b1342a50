package filters

import (
	"strings"
	"testing"
)

func TestEventKey(t *testing.T) {
	ev := &Event{ID: "e1", Topic: "asset.updated", Tenant: "t1",
		Data: map[string]any{"RecordID": "r-7", "n": float64(42), "f": 1.5, "ok": true, "m": map[string]any{}, "long": strings.Repeat("x", 300)}}
	for _, tc := range []struct {
		src, want, err string
	}{
		{src: "data.RecordID", want: "r-7"},
		{src: "data.n", want: "42"},
		{src: "data.f", want: "1.5"},
		{src: "tenant + ':' + data.RecordID", want: "t1:r-7"},
		{src: "topic", want: "asset.updated"},
		{src: "len(data.long)", want: "300"},
		{src: "data.long", want: strings.Repeat("x", MaxKeyBytes)},
		{src: "data.missing", err: "got nil"},
		{src: "data.ok", err: "got bool"},
		{src: "data.m", err: "got map"},
		{src: "data.m.x.y", err: "order_key"},
	} {
		k, err := CompileEventKey(tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		got, err := k.Key(ev)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || got != "" {
				t.Errorf("%s: got %q, %v; want an error with %q", tc.src, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.src, got, err, tc.want)
		}
		if k.String() != tc.src {
			t.Errorf("String() = %q", k.String())
		}
	}
	for _, bad := range []string{"", "data.", "nosuch.x", strings.Repeat("a+", 5000) + "a"} {
		if _, err := CompileEventKey(bad); err == nil {
			t.Errorf("%q compiled", bad)
		} else if !strings.Contains(err.Error(), "order_key") && AsLimit(err) == nil {
			t.Errorf("%q: error %v does not name order_key", bad[:min(len(bad), 20)], err)
		}
	}
}
