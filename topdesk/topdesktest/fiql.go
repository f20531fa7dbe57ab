package topdesktest

import (
	"fmt"
	"strings"
	"time"
)

// The simulator understands the FIQL that alertdesk sends: an AND (;) of
// comparisons such as externalNumber=='alertdesk-…' (a find),
// externalNumber=sw=alertdesk- (a list) and
// externalNumber=sw=alertdesk-;modificationDate=gt=2026-11-05T10:00:00Z (a
// two-way sync), and the lookups' email=='…' or groupName=='…'. OR (,),
// parentheses, =in= and =out=, which TOPdesk also has, answer 400 "Error
// parsing query" here.

// fieldType is the type of a field FIQL can query.
type fieldType int

const (
	ftString fieldType = iota + 1
	ftBool
	ftDate
)

// fiqlValue is one side of a comparison: a field's value, or null.
type fiqlValue struct {
	null bool
	s    string
	b    bool
	t    time.Time
}

// fiqlCmp is one comparison, with its argument parsed for the field's type.
type fiqlCmp struct {
	field string
	op    string // ==, !=, =sw=, =gt=, =ge=, =lt=, =le=
	arg   fiqlValue
}

// fiqlQuery is an AND of comparisons; nil matches everything.
type fiqlQuery []fiqlCmp

func (q fiqlQuery) eval(get func(field string) fiqlValue) bool {
	for _, c := range q {
		if !c.eval(get(c.field)) {
			return false
		}
	}
	return true
}

func (c fiqlCmp) eval(v fiqlValue) bool {
	switch c.op {
	case "==":
		return v.equal(c.arg)
	case "!=":
		return !v.equal(c.arg)
	case "=sw=":
		return !v.null && strings.HasPrefix(strings.ToLower(v.s), strings.ToLower(c.arg.s))
	case "=gt=":
		return !v.null && v.t.After(c.arg.t)
	case "=ge=":
		return !v.null && !v.t.Before(c.arg.t)
	case "=lt=":
		return !v.null && v.t.Before(c.arg.t)
	default: // =le=
		return !v.null && !v.t.After(c.arg.t)
	}
}

// equal compares like TOPdesk's database does: text case-insensitively.
func (v fiqlValue) equal(a fiqlValue) bool {
	switch {
	case v.null || a.null:
		return v.null == a.null
	case !v.t.IsZero() || !a.t.IsZero():
		return v.t.Equal(a.t)
	default:
		return v.b == a.b && strings.EqualFold(v.s, a.s)
	}
}

// externalNumber returns the value of an externalNumber==… term, so that
// matching incidents can be found through the index; ok is false when the
// query has none and needs a scan.
func (q fiqlQuery) externalNumber() (key string, ok bool) {
	for _, c := range q {
		if c.field == "externalNumber" && c.op == "==" && !c.arg.null {
			return strings.ToLower(c.arg.s), true
		}
	}
	return "", false
}

// parseFIQL parses query for the fields in types. Errors start with "Error
// parsing query", as TOPdesk's do.
func parseFIQL(query string, types map[string]fieldType) (fiqlQuery, error) {
	p := &fiqlParser{in: query}
	var q fiqlQuery
	for {
		c, err := p.comparison(types)
		if err != nil {
			return nil, err
		}
		q = append(q, c)
		switch p.peek() {
		case 0:
			return q, nil
		case ';':
			p.pos++
		default:
			return nil, p.errorf("unexpected %q (the simulator supports only comparisons joined by ';')", p.in[p.pos:])
		}
	}
}

type fiqlParser struct {
	in  string
	pos int
}

func (p *fiqlParser) errorf(format string, args ...any) error {
	return fmt.Errorf("Error parsing query %q at position %d: %s", p.in, p.pos, fmt.Sprintf(format, args...)) //nolint:staticcheck // TOPdesk's message starts with a capital.
}

func (p *fiqlParser) peek() byte {
	if p.pos < len(p.in) {
		return p.in[p.pos]
	}
	return 0
}

// reserved are the characters that end a field name or a bare value.
const reserved = `'"();,=!~<>`

func (p *fiqlParser) comparison(types map[string]fieldType) (fiqlCmp, error) {
	start := p.pos
	for p.pos < len(p.in) && !strings.ContainsRune(reserved, rune(p.in[p.pos])) {
		p.pos++
	}
	c := fiqlCmp{field: p.in[start:p.pos]}
	ft, ok := types[c.field]
	if !ok {
		p.pos = start
		return c, p.errorf("unknown or unsupported field %q", c.field)
	}
	for _, op := range []string{"==", "!=", "=sw=", "=gt=", "=ge=", "=lt=", "=le="} {
		if strings.HasPrefix(p.in[p.pos:], op) {
			c.op = op
			break
		}
	}
	switch {
	case c.op == "":
		return c, p.errorf("expected one of ==, !=, =sw=, =gt=, =ge=, =lt=, =le= after %q", c.field)
	case c.op == "=sw=" && ft != ftString:
		return c, p.errorf("=sw= is only available for text, not for %q", c.field)
	case c.op != "==" && c.op != "!=" && c.op != "=sw=" && ft != ftDate:
		return c, p.errorf("%s is only available for dates, not for %q", c.op, c.field)
	}
	p.pos += len(c.op)
	s, quoted, err := p.value()
	if err != nil {
		return c, err
	}
	switch {
	case !quoted && s == "null":
		if c.op != "==" && c.op != "!=" {
			return c, p.errorf("null is only allowed with == and !=")
		}
		c.arg.null = true
	case ft == ftBool && (s == "true" || s == "false"):
		c.arg.b = s == "true"
	case ft == ftBool:
		return c, p.errorf("%q: %q is not true or false", c.field, s)
	case ft == ftDate:
		if c.arg.t, err = parseDate(s); err != nil {
			return c, p.errorf("%q: %q is not an ISO 8601 date", c.field, s)
		}
	default:
		c.arg.s = s
	}
	return c, nil
}

// value reads a quoted ('…' or "…", backslash escapes) or bare value.
func (p *fiqlParser) value() (s string, quoted bool, err error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		start := p.pos
		for p.pos < len(p.in) && !strings.ContainsRune(reserved, rune(p.in[p.pos])) {
			p.pos++
		}
		if p.pos == start {
			return "", false, p.errorf("missing value")
		}
		return p.in[start:p.pos], false, nil
	}
	p.pos++
	var b strings.Builder
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		p.pos++
		switch {
		case c == '\\' && p.pos < len(p.in):
			b.WriteByte(p.in[p.pos])
			p.pos++
		case c == q:
			return b.String(), true, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", false, p.errorf("unterminated quoted value")
}
