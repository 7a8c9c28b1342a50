package schema

import "testing"

func TestURITemplate(t *testing.T) {
	tests := []struct {
		tmpl  string
		valid bool
	}{
		// Valid: GitHub's API templates and every RFC 6570 level.
		{"https://api.github.com/users/octocat/events{/privacy}", true},
		{"https://api.github.com/users/octocat/following{/other_user}", true},
		{"https://api.github.com/repos/octocat/Hello-World/issues{/number}", true},
		{"https://api.github.com/repos/octocat/Hello-World/compare/{base}...{head}", true},
		{"https://uploads.github.com/repos/octocat/Hello-World/releases/1/assets{?name,label}", true},
		{"", true},
		{"https://example.com/no/expressions", true},
		{"relative/{path}", true},
		{"{var}", true},
		{"{+path}/here", true},
		{"here?ref={#frag}", true},
		{"X{.list*}", true},
		{"{/var:1,var}", true},
		{"{;keys*}", true},
		{"{?x,y}{&z}", true},
		{"{var:9999}", true},
		{"{a.b.c}", true},
		{"{%C3%A9t%C3%A9}", true},
		{"{x_1,Y2}", true},
		{"caf%C3%A9/{x}", true},
		{"https://example.com/ü/{x}", true},
		{"/{x}[]", true},
		// Invalid.
		{"{unclosed", false},
		{"https://example.com/{a}/{b", false},
		{"unopened}", false},
		{"{}", false},
		{"{+}", false},
		{"{a{b}}", false},
		{"{a b}", false},
		{"{a,}", false},
		{"{,a}", false},
		{"{.a.}", false},
		{"{a..b}", false},
		{"{var:0}", false},
		{"{var:10000}", false},
		{"{var:}", false},
		{"{var:1*}", false},
		{"{var**}", false},
		{"{=reserved}", false},
		{"{!reserved}", false},
		{"{|reserved}", false},
		{"{@reserved}", false},
		{"{$x}", false},
		{"{%zz}", false},
		{"a b", false},
		{"a\"b", false},
		{"a<b>", false},
		{"a\\b", false},
		{"a^b", false},
		{"a`b", false},
		{"a|b", false},
		{"a'b", false},
		{"100%", false},
		{"%4", false},
		{"%g0", false},
		{"a\x00b", false},
		{"a\x7fb", false},
		{"a\xffb", false},
		{"a\u0085b", false}, // C1 control, not ucschar
		{"a\uFFFEb", false},
		{"a\U0001FFFEb", false}, // plane 1 noncharacter
		{"a\U000E0001b", false}, // language tag, excluded from ucschar
		{"a\U0001F600b", true},
		{"a\U000F0000b", true}, // iprivate
	}
	for _, tt := range tests {
		err := checkURITemplate(tt.tmpl)
		if (err == nil) != tt.valid {
			t.Errorf("checkURITemplate(%q) = %v, want valid=%v", tt.tmpl, err, tt.valid)
		}
		if isURITemplate(tt.tmpl) != tt.valid {
			t.Errorf("isURITemplate(%q) != %v", tt.tmpl, tt.valid)
		}
	}
	// Format checks only apply to strings.
	for _, v := range []any{nil, 1.0, true, map[string]any{}, []any{"{"}} {
		if !isURITemplate(v) {
			t.Errorf("isURITemplate(%#v) = false, want true for non-strings", v)
		}
	}
}
