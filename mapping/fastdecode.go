package mapping

import (
	"unicode/utf16"
	"unicode/utf8"
)

// decodeNativeFast decodes the common case — one well-formed native event
// whose keys are all known, spelt exactly (encoding/json would match them
// case-insensitively), without escapes, each once; whose values are
// strings or null, and string-to-string objects or null for labels and
// annotations — in a single pass, without encoding/json. It decodes
// strings as encoding/json does for valid UTF-8 without surrogate escapes:
// the escapes \" \\ \/ \b \f \n \r \t and \uXXXX, the last key of a
// repeated label winning, a null string being "". ok is false for anything
// else (invalid UTF-8, a surrogate escape, unknown or duplicate keys, an
// Alertmanager webhook, other JSON types, bad values, trailing data), and
// the caller takes the field-by-field path, which accepts exactly the same
// events and explains what is wrong with the others.
func decodeNativeFast(data []byte) (a Alert, ok bool) {
	if !utf8.Valid(data) {
		return Alert{}, false
	}
	var w wireAlert // the schema Encode writes
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return Alert{}, false
	}
	var seen uint32
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			field, next := fieldName(data, i)
			if field < 0 || seen&(1<<field) != 0 {
				return Alert{}, false
			}
			seen |= 1 << field
			if i = skipSpace(data, next); i >= len(data) || data[i] != ':' {
				return Alert{}, false
			}
			i = skipSpace(data, i+1)
			switch str, labels := w.field(nativeFields[field]); {
			case str != nil:
				*str, i, ok = nullableString(data, i)
			case labels != nil:
				*labels, i, ok = stringMap(data, i)
			default:
				ok = false
			}
			if !ok {
				return Alert{}, false
			}
			if i = skipSpace(data, i); i >= len(data) {
				return Alert{}, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return Alert{}, false
			}
			i = skipSpace(data, i+1)
		}
	}
	if skipSpace(data, i) != len(data) {
		return Alert{}, false
	}

	st, err := parseStatus(string(w.Status))
	if err != nil {
		return Alert{}, false
	}
	a = Alert{
		Key: w.Key, Fingerprint: w.Fingerprint, Status: st, Severity: w.Severity, Summary: w.Summary,
		Description: w.Description, Source: w.Source, URL: w.URL, Labels: w.Labels, Annotations: w.Annotations,
	}
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(a.Annotations) == 0 {
		a.Annotations = nil
	}
	if a.StartsAt, err = parseTime(w.StartsAt); err != nil {
		return Alert{}, false
	}
	if a.EndsAt, err = parseTime(w.EndsAt); err != nil {
		return Alert{}, false
	}
	if a.Timestamp, err = parseTime(w.Timestamp); err != nil {
		return Alert{}, false
	}
	return a, true
}

// field returns the string or the map of the native field name; neither
// for another name.
func (w *wireAlert) field(name string) (*string, *map[string]string) {
	switch name {
	case "key":
		return &w.Key, nil
	case "fingerprint":
		return &w.Fingerprint, nil
	case "status":
		return (*string)(&w.Status), nil
	case "severity":
		return &w.Severity, nil
	case "summary":
		return &w.Summary, nil
	case "description":
		return &w.Description, nil
	case "source":
		return &w.Source, nil
	case "url":
		return &w.URL, nil
	case "labels":
		return nil, &w.Labels
	case "annotations":
		return nil, &w.Annotations
	case "startsAt":
		return &w.StartsAt, nil
	case "endsAt":
		return &w.EndsAt, nil
	case "timestamp":
		return &w.Timestamp, nil
	}
	return nil, nil
}

// fieldName reads the key at data[i] and returns its index in
// nativeFields, or -1 when it is not one of them spelt exactly without
// escapes, and the index after it.
func fieldName(data []byte, i int) (field, next int) {
	if i >= len(data) || data[i] != '"' {
		return -1, i
	}
	start := i + 1
	end := start
	for end < len(data) && data[end] != '"' && data[end] != '\\' {
		end++
	}
	if end >= len(data) || data[end] != '"' {
		return -1, i
	}
	for n, name := range nativeFields {
		if string(data[start:end]) == name {
			return n, end + 1
		}
	}
	return -1, i
}

// stringMap reads null (a nil map) or an object of strings or nulls (as
// "") at data[i].
func stringMap(data []byte, i int) (m map[string]string, next int, ok bool) {
	if isNullAt(data, i) {
		return nil, i + len("null"), true
	}
	if i >= len(data) || data[i] != '{' {
		return nil, i, false
	}
	m = make(map[string]string)
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return m, i + 1, true
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, i, false
		}
		k, next, ok := quotedString(data, i)
		if !ok {
			return nil, i, false
		}
		if i = skipSpace(data, next); i >= len(data) || data[i] != ':' {
			return nil, i, false
		}
		v, next, ok := nullableString(data, skipSpace(data, i+1))
		if !ok {
			return nil, i, false
		}
		m[k] = v
		if i = skipSpace(data, next); i >= len(data) {
			return nil, i, false
		}
		switch data[i] {
		case '}':
			return m, i + 1, true
		case ',':
			i = skipSpace(data, i+1)
		default:
			return nil, i, false
		}
	}
}

// nullableString reads a string or null (as "") at data[i].
func nullableString(data []byte, i int) (s string, next int, ok bool) {
	if isNullAt(data, i) {
		return "", i + len("null"), true
	}
	if i >= len(data) || data[i] != '"' {
		return "", i, false
	}
	return quotedString(data, i)
}

func isNullAt(data []byte, i int) bool {
	return len(data)-i >= len("null") && string(data[i:i+len("null")]) == "null"
}

// quotedString reads the JSON string whose opening quote is at data[i]
// (the data is valid UTF-8). It fails on control characters, unknown
// escapes and surrogate escapes.
func quotedString(data []byte, i int) (s string, next int, ok bool) {
	start := i + 1
	j := start
	for j < len(data) && data[j] != '"' && data[j] != '\\' && data[j] >= 0x20 {
		j++
	}
	if j < len(data) && data[j] == '"' {
		return string(data[start:j]), j + 1, true
	}
	buf := make([]byte, 0, j-start+16)
	buf = append(buf, data[start:j]...)
	for j < len(data) {
		c := data[j]
		switch {
		case c == '"':
			return string(buf), j + 1, true
		case c < 0x20:
			return "", j, false
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(data) {
			return "", j, false
		}
		switch e := data[j+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(data[j+2:])
			if !ok || utf16.IsSurrogate(r) {
				return "", j, false
			}
			buf = utf8.AppendRune(buf, r)
			j += 4
		default:
			return "", j, false
		}
		j += 2
	}
	return "", j, false
}

// hex4 decodes the four hex digits that start b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}
