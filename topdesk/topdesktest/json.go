package topdesktest

import (
	"bytes"
	"cmp"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// The simulator reads request bodies and writes incidents with the helpers
// below instead of decoding into map[string]json.RawMessage and encoding
// maps, which cost most of its CPU per request. They accept and produce
// exactly what encoding/json does: the tests compare them with it.

// member is one name/value pair of a JSON object: the decoded name and the
// value's text as sent, without the white space around it.
type member struct {
	key string
	val []byte
}

// maxJSONDepth is how deeply encoding/json lets arrays and objects nest.
const maxJSONDepth = 10000

// objectMembers checks that raw is one JSON object (white space around it
// aside) and appends its members to dst in the order sent. ok is false when
// raw is not valid JSON or not an object: exactly when json.Unmarshal into a
// map[string]json.RawMessage fails or leaves the map nil.
func objectMembers(dst []member, raw []byte) (ms []member, ok bool) {
	sc := jsonScanner{b: raw}
	sc.space()
	if sc.peek() != '{' {
		return nil, false
	}
	sc.i++
	sc.space()
	ms = dst
	if sc.peek() == '}' {
		sc.i++
	} else {
		for {
			start := sc.i
			if sc.peek() != '"' || !sc.str() {
				return nil, false
			}
			key := jsonText(raw[start:sc.i])
			sc.space()
			if sc.peek() != ':' {
				return nil, false
			}
			sc.i++
			sc.space()
			start = sc.i
			if !sc.value(1) {
				return nil, false
			}
			ms = append(ms, member{key: key, val: raw[start:sc.i]})
			sc.space()
			if sc.peek() == ',' {
				sc.i++
				sc.space()
				continue
			}
			if sc.peek() != '}' {
				return nil, false
			}
			sc.i++
			break
		}
	}
	sc.space()
	return ms, sc.i == len(raw)
}

// sortMembers sorts ms by name in place and keeps only the last of members
// with the same name, as decoding into a map does.
func sortMembers(ms []member) []member {
	slices.SortStableFunc(ms, func(a, b member) int { return cmp.Compare(a.key, b.key) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].key == m.key {
			continue
		}
		out = append(out, m)
	}
	return out
}

// jsonScanner validates JSON text the way encoding/json does.
type jsonScanner struct {
	b []byte
	i int
}

func (sc *jsonScanner) peek() byte {
	if sc.i < len(sc.b) {
		return sc.b[sc.i]
	}
	return 0
}

func (sc *jsonScanner) space() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// value skips one value; depth is how many arrays and objects enclose it.
func (sc *jsonScanner) value(depth int) bool {
	switch c := sc.peek(); {
	case c == '{':
		return sc.container(depth, '}', true)
	case c == '[':
		return sc.container(depth, ']', false)
	case c == '"':
		return sc.str()
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return sc.number()
	}
	return false
}

// container skips an object (keyed) or an array, which closes with end.
func (sc *jsonScanner) container(depth int, end byte, keyed bool) bool {
	if depth+1 > maxJSONDepth {
		return false
	}
	sc.i++
	sc.space()
	if sc.peek() == end {
		sc.i++
		return true
	}
	for {
		if keyed {
			if sc.peek() != '"' || !sc.str() {
				return false
			}
			sc.space()
			if sc.peek() != ':' {
				return false
			}
			sc.i++
			sc.space()
		}
		if !sc.value(depth + 1) {
			return false
		}
		sc.space()
		switch sc.peek() {
		case ',':
			sc.i++
			sc.space()
		case end:
			sc.i++
			return true
		default:
			return false
		}
	}
}

func (sc *jsonScanner) literal(word string) bool {
	if !bytes.HasPrefix(sc.b[sc.i:], []byte(word)) {
		return false
	}
	sc.i += len(word)
	return true
}

func (sc *jsonScanner) digits() bool {
	start := sc.i
	for sc.i < len(sc.b) && '0' <= sc.b[sc.i] && sc.b[sc.i] <= '9' {
		sc.i++
	}
	return sc.i > start
}

// number skips -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (sc *jsonScanner) number() bool {
	if sc.peek() == '-' {
		sc.i++
	}
	switch c := sc.peek(); {
	case c == '0':
		sc.i++
	case '1' <= c && c <= '9':
		sc.digits()
	default:
		return false
	}
	if sc.peek() == '.' {
		sc.i++
		if !sc.digits() {
			return false
		}
	}
	if c := sc.peek(); c == 'e' || c == 'E' {
		sc.i++
		if c := sc.peek(); c == '+' || c == '-' {
			sc.i++
		}
		if !sc.digits() {
			return false
		}
	}
	return true
}

// str skips a string: no control characters, and only JSON's escapes.
func (sc *jsonScanner) str() bool {
	sc.i++
	for sc.i < len(sc.b) {
		c := sc.b[sc.i]
		switch {
		case c == '"':
			sc.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			sc.i++
			switch sc.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				sc.i++
			case 'u':
				if sc.i+5 > len(sc.b) {
					return false
				}
				for _, h := range sc.b[sc.i+1 : sc.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				sc.i += 5
			default:
				return false
			}
		default:
			sc.i++
		}
	}
	return false
}

// jsonString decodes raw, a valid JSON value, as json.Unmarshal into a
// string does; ok is false when raw is not a string.
func jsonString(raw []byte) (s string, ok bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	return jsonText(raw), true
}

// jsonText decodes raw, a valid JSON string with its quotes, as
// json.Unmarshal does: a \u escape of a surrogate that is not the first of a
// pair of escapes making one character, and each byte that is not valid
// UTF-8, become U+FFFD.
func jsonText(raw []byte) string {
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in)
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '\\' && in[i+1] == 'u':
			r := hex4(in[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				pair := utf8.RuneError
				if i+6 <= len(in) && in[i] == '\\' && in[i+1] == 'u' {
					pair = utf16.DecodeRune(r, hex4(in[i+2:i+6]))
				}
				if pair != utf8.RuneError {
					i += 6
				}
				r = pair
			}
			out = utf8.AppendRune(out, r)
		case c == '\\':
			switch c = in[i+1]; c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
			out = append(out, c)
			i += 2
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(in) && in[j] != '\\' && in[j] < utf8.RuneSelf {
				j++
			}
			out = append(out, in[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(in[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	return string(out)
}

// hex4 reads four hex digits.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// hexDigits are the digits of \u escapes, which json.Marshal writes in lower
// case.
const hexDigits = "0123456789abcdef"

// escapedLow has bit c set for each byte c below 64 that appendString
// escapes: the control characters, ", & , < and >. Of the other ASCII bytes,
// only \ is escaped.
const escapedLow = 1<<0x20 - 1 | 1<<'"' | 1<<'&' | 1<<'<' | 1<<'>'

// appendString appends s as a JSON string, escaped as json.Marshal does:
// with <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029 escaped,
// and invalid UTF-8 replaced by U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped appends the inside of appendString's JSON string.
func appendEscaped(dst []byte, s string) []byte {
	done := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 64 && escapedLow>>c&1 == 0 || c >= 64 && c < utf8.RuneSelf && c != '\\' {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			var esc string
			switch c {
			case '"':
				esc = `\"`
			case '\\':
				esc = `\\`
			case '\b':
				esc = `\b`
			case '\f':
				esc = `\f`
			case '\n':
				esc = `\n`
			case '\r':
				esc = `\r`
			case '\t':
				esc = `\t`
			}
			dst = append(dst, s[done:i]...)
			if esc != "" {
				dst = append(dst, esc...)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			esc = `\ufffd`
		case r == '\u2028':
			esc = `\u2028`
		case r == '\u2029':
			esc = `\u2029`
		default:
			i += size
			continue
		}
		dst = append(dst, s[done:i]...)
		dst = append(dst, esc...)
		i += size
		done = i
	}
	return append(dst, s[done:]...)
}

// appendCompact appends raw, a valid JSON value, as json.Marshal writes a
// json.RawMessage: without white space outside strings, and with the
// escapes of appendString for <, >, &, U+2028 and U+2029 inside them.
func appendCompact(dst []byte, raw []byte) []byte {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
		case !inString:
			inString = c == '"'
			dst = append(dst, c)
		case c == '\\':
			dst = append(dst, c, raw[i+1])
			i++
		case c == '"':
			inString = false
			dst = append(dst, c)
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		case c == 0xe2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xa8 || raw[i+2] == 0xa9):
			// U+2028 or U+2029.
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xf])
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
