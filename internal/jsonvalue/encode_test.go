package jsonvalue

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendStringAsEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "controls \x00\x01\b\f\n\r\t\x1f\x7f",
		"<html> & 'apostrophe'", "é 日本 \U0001F600", "invalid \xff\xfe and cut \xc3", "separators \u2028 \u2029",
	} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
		if got := AppendString([]byte("prefix:"), s); !bytes.Equal(got, append([]byte("prefix:"), want...)) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}
