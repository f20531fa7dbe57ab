package mapping

import "strings"

// The escapers below do what html/template's escapers of the same contexts
// do to a plain string (never to template.HTML or template.URL values: the
// compiled templates only ever pass strings). compile uses them for the
// escaper commands html/template inserts into a parsed tree;
// TestCompiledMatchesTemplate and FuzzCompiledMatchesTemplate hold them to
// html/template's output.

// htmlEscapes are the replacements of html/template's HTML text and quoted
// attribute escapers (_html_template_htmlescaper, _html_template_attrescaper,
// _html_template_rcdataescaper) for plain text, by byte. Only ASCII bytes
// are replaced, so the byte-wise loop agrees with html/template's rune-wise
// one for every input, including invalid UTF-8.
var htmlEscapes = [...]string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// appendHTMLEscaped appends s to b escaped for HTML text or a quoted
// attribute value.
func appendHTMLEscaped(b []byte, s string) []byte {
	written := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if int(c) >= len(htmlEscapes) || htmlEscapes[c] == "" {
			continue
		}
		b = append(b, s[written:i]...)
		b = append(b, htmlEscapes[c]...)
		written = i + 1
	}
	return append(b, s[written:]...)
}

// htmlEscaped returns s escaped for HTML text or a quoted attribute value.
func htmlEscaped(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; int(c) < len(htmlEscapes) && htmlEscapes[c] != "" {
			return string(appendHTMLEscaped(make([]byte, 0, len(s)+16), s))
		}
	}
	return s
}

// filterFailsafe replaces a URL that urlFilter rejects, as in html/template.
const filterFailsafe = "#ZgotmplZ"

// urlFilter is _html_template_urlfilter: s unless it has a scheme other
// than http, https or mailto (compared case-insensitively), else
// filterFailsafe.
func urlFilter(s string) string {
	if scheme, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(scheme, "/") {
		if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") && !strings.EqualFold(scheme, "mailto") {
			return filterFailsafe
		}
	}
	return s
}

// urlEscaped is _html_template_urlnormalizer (norm) or
// _html_template_urlescaper (!norm): every byte outside RFC 3986's
// unreserved set is percent-encoded with lower-case hex digits, except,
// when normalizing, reserved characters and existing %XX escapes.
func urlEscaped(s string, norm bool) string {
	const hex = "0123456789abcdef"
	var b []byte
	written := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '!', '#', '$', '&', '*', '+', ',', '/', ':', ';', '=', '?', '@', '[', ']':
			if norm {
				continue
			}
		case '-', '.', '_', '~':
			continue
		case '%':
			if norm && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
				continue
			}
		default:
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				continue
			}
		}
		if b == nil {
			b = make([]byte, 0, len(s)+16)
		}
		b = append(b, s[written:i]...)
		b = append(b, '%', hex[c>>4], hex[c&0xf])
		written = i + 1
	}
	if b == nil {
		return s
	}
	return string(append(b, s[written:]...))
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
