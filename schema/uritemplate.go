package schema

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// isURITemplate is the "uri-template" format check: a string must be a
// syntactically valid RFC 6570 URI Template (any level, up to 4); other JSON
// types pass, as format checks only apply to strings.
//
// It replaces jsonschema/v5's built-in check, which splits the template on
// "/" and therefore rejects valid templates such as
// "https://api.github.com/users/octocat/events{/privacy}".
func isURITemplate(v any) bool {
	s, ok := v.(string)
	if !ok {
		return true
	}
	return checkURITemplate(s) == nil
}

// checkURITemplate checks s against the RFC 6570 ABNF (section 2):
//
//	URI-Template = *( literals / expression )
//	expression   = "{" [ operator ] variable-list "}"
//	operator     = "+" / "#" / "." / "/" / ";" / "?" / "&"
//	variable-list = varspec *( "," varspec )
//	varspec      = varname [ ":" max-length / "*" ]
//	varname      = varchar *( ["."] varchar )
//	varchar      = ALPHA / DIGIT / "_" / pct-encoded
//	max-length   = %x31-39 0*3DIGIT
//
// The operators "=", ",", "!", "@" and "|" are reserved by RFC 6570 for
// future extensions (op-reserve) and have no defined expansion, so they are
// rejected.
func checkURITemplate(s string) error {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return fmt.Errorf("offset %d: unclosed expression", i)
			}
			if err := checkExpression(s[i+1 : i+1+end]); err != nil {
				return fmt.Errorf("offset %d: %w", i, err)
			}
			i += end + 2
		case c == '}':
			return fmt.Errorf("offset %d: unmatched '}'", i)
		case c == '%':
			if !pctEncoded(s[i:]) {
				return fmt.Errorf("offset %d: invalid percent-encoding", i)
			}
			i += 3
		case c < utf8.RuneSelf:
			if !literalASCII(c) {
				return fmt.Errorf("offset %d: character %q not allowed", i, c)
			}
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return fmt.Errorf("offset %d: invalid UTF-8", i)
			}
			if !ucschar(r) && !iprivate(r) {
				return fmt.Errorf("offset %d: character %U not allowed", i, r)
			}
			i += size
		}
	}
	return nil
}

// checkExpression checks the inside of "{…}".
func checkExpression(e string) error {
	if e == "" {
		return errors.New("empty expression")
	}
	switch e[0] {
	case '+', '#', '.', '/', ';', '?', '&':
		e = e[1:]
	case '=', ',', '!', '@', '|':
		return fmt.Errorf("reserved operator %q", e[0])
	}
	for spec := range strings.SplitSeq(e, ",") {
		if err := checkVarspec(spec); err != nil {
			return err
		}
	}
	return nil
}

// checkVarspec checks varname [ ":" max-length / "*" ].
func checkVarspec(spec string) error {
	i := 0
	prevDot := true // a varname may not start with "."
scan:
	for i < len(spec) {
		c := spec[i]
		switch {
		case isAlpha(c) || isDigit(c) || c == '_':
			prevDot = false
			i++
			continue
		case c == '%':
			if !pctEncoded(spec[i:]) {
				return errors.New("invalid percent-encoding in variable name")
			}
			prevDot = false
			i += 3
			continue
		case c == '.':
			if prevDot {
				return fmt.Errorf("invalid variable name %q", spec)
			}
			prevDot = true
			i++
			continue
		}
		break scan
	}
	if i == 0 {
		return fmt.Errorf("missing variable name in %q", spec)
	}
	if prevDot {
		return fmt.Errorf("invalid variable name %q", spec)
	}
	switch mod := spec[i:]; {
	case mod == "", mod == "*":
		return nil
	case mod[0] == ':':
		n := mod[1:]
		if len(n) < 1 || len(n) > 4 || n[0] == '0' {
			return fmt.Errorf("invalid prefix length in %q", spec)
		}
		for j := range len(n) {
			if !isDigit(n[j]) {
				return fmt.Errorf("invalid prefix length in %q", spec)
			}
		}
		return nil
	default:
		return fmt.Errorf("invalid character %q in variable %q", mod[0], spec)
	}
}

// literalASCII reports whether ASCII byte c may appear literally:
// %x21 / %x23-24 / %x26 / %x28-3B / %x3D / %x3F-5B / %x5D / %x5F / %x61-7A / %x7E.
// ("%" is handled by the caller as pct-encoded.)
func literalASCII(c byte) bool {
	switch {
	case c == 0x21, c >= 0x23 && c <= 0x24, c == 0x26, c >= 0x28 && c <= 0x3B,
		c == 0x3D, c >= 0x3F && c <= 0x5B, c == 0x5D, c == 0x5F,
		c >= 0x61 && c <= 0x7A, c == 0x7E:
		return true
	}
	return false
}

// ucschar is RFC 3987's ucschar.
func ucschar(r rune) bool {
	switch {
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFEF:
		return true
	case r >= 0x10000 && r <= 0xDFFFD: // %x10000-1FFFD / … / %xD0000-DFFFD
		return r&0xFFFF <= 0xFFFD
	case r >= 0xE1000 && r <= 0xEFFFD:
		return true
	}
	return false
}

// iprivate is RFC 3987's iprivate.
func iprivate(r rune) bool {
	return (r >= 0xE000 && r <= 0xF8FF) || (r >= 0xF0000 && r <= 0xFFFFD) || (r >= 0x100000 && r <= 0x10FFFD)
}

// pctEncoded reports whether s starts with "%" HEXDIG HEXDIG.
func pctEncoded(s string) bool {
	return len(s) >= 3 && s[0] == '%' && isHex(s[1]) && isHex(s[2])
}

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
