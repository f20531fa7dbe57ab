package mapping

import (
	"encoding/json"
)

// decodeNativeFast decodes the common case — one well-formed native event
// whose keys are all known, spelt exactly, each once — in a single pass.
// ok is false for anything else (unknown, duplicate or escaped keys, an
// Alertmanager webhook, wrong types, bad values), and the caller takes the
// field-by-field path, which accepts exactly the same events and explains
// what is wrong with the others.
func decodeNativeFast(data []byte) (a Alert, ok bool) {
	if !knownKeysOnce(data) {
		return Alert{}, false
	}
	var w wireAlert // the schema Encode writes
	if json.Unmarshal(data, &w) != nil {
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

// knownKeysOnce reports whether data is a JSON object whose top-level keys
// are all native field names, spelt exactly (encoding/json would match them
// case-insensitively), without escapes and each at most once. It only
// scans: a malformed document either fails here or in the decoding after.
func knownKeysOnce(data []byte) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	var seen uint32
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return true
	}
	for i < len(data) {
		if data[i] != '"' {
			return false
		}
		start := i + 1
		end := start
		for end < len(data) && data[end] != '"' {
			if data[end] == '\\' {
				return false
			}
			end++
		}
		if end >= len(data) {
			return false
		}
		field := -1
		for n, name := range nativeFields {
			if string(data[start:end]) == name {
				field = n
				break
			}
		}
		if field < 0 || seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		if i = skipValue(data, skipSpace(data, i+1)); i < 0 {
			return false
		}
		i = skipSpace(data, i)
		switch {
		case i >= len(data):
			return false
		case data[i] == '}':
			return true
		case data[i] != ',':
			return false
		}
		i = skipSpace(data, i+1)
	}
	return false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i, or
// -1 when it cannot tell.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				if i = skipString(data, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the string starting at i.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}
