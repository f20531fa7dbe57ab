package topdesktest

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

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

// fiqlNode is a parsed FIQL expression.
type fiqlNode interface {
	eval(get func(field string) fiqlValue) bool
}

type fiqlAnd []fiqlNode

func (n fiqlAnd) eval(get func(string) fiqlValue) bool {
	for _, c := range n {
		if !c.eval(get) {
			return false
		}
	}
	return true
}

type fiqlOr []fiqlNode

func (n fiqlOr) eval(get func(string) fiqlValue) bool {
	for _, c := range n {
		if c.eval(get) {
			return true
		}
	}
	return false
}

// fiqlCmp is one comparison, with its arguments parsed for the field's type.
type fiqlCmp struct {
	field string
	op    string // ==, !=, =gt=, =ge=, =lt=, =le=, =sw=, =in=, =out=
	args  []fiqlValue
}

func (c *fiqlCmp) eval(get func(string) fiqlValue) bool {
	v := get(c.field)
	switch c.op {
	case "==", "=in=":
		return slices.ContainsFunc(c.args, func(a fiqlValue) bool { return v.equal(a) })
	case "!=", "=out=":
		return !slices.ContainsFunc(c.args, func(a fiqlValue) bool { return v.equal(a) })
	case "=sw=":
		return !v.null && hasPrefixFold(v.s, c.args[0].s)
	}
	if v.null {
		return false
	}
	a := c.args[0].t
	switch c.op {
	case "=gt=":
		return v.t.After(a)
	case "=ge=":
		return !v.t.Before(a)
	case "=lt=":
		return v.t.Before(a)
	default: // =le=
		return !v.t.After(a)
	}
}

// hasPrefixFold reports whether the lower-case form of s starts with that of
// prefix; ASCII text is compared without building the lower-case forms.
func hasPrefixFold(s, prefix string) bool {
	if !isASCII(s) || !isASCII(prefix) {
		return strings.HasPrefix(strings.ToLower(s), strings.ToLower(prefix))
	}
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
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

// parseFIQL parses query for the fields in types. Errors start with "Error
// parsing query", as TOPdesk's do.
func parseFIQL(query string, types map[string]fieldType) (fiqlNode, error) {
	p := &fiqlParser{in: query, types: types}
	n, err := p.or()
	if err == nil && p.pos < len(p.in) {
		err = p.errorf("unexpected %q", p.in[p.pos:])
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

type fiqlParser struct {
	in    string
	pos   int
	types map[string]fieldType
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

func (p *fiqlParser) or() (fiqlNode, error) {
	var ns fiqlOr
	for {
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
		if p.peek() != ',' {
			break
		}
		p.pos++
	}
	if len(ns) == 1 {
		return ns[0], nil
	}
	return ns, nil
}

func (p *fiqlParser) and() (fiqlNode, error) {
	var ns fiqlAnd
	for {
		n, err := p.primary()
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
		if p.peek() != ';' {
			break
		}
		p.pos++
	}
	if len(ns) == 1 {
		return ns[0], nil
	}
	return ns, nil
}

func (p *fiqlParser) primary() (fiqlNode, error) {
	if p.peek() == '(' {
		p.pos++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, p.errorf("missing ')'")
		}
		p.pos++
		return n, nil
	}
	return p.comparison()
}

func (p *fiqlParser) comparison() (fiqlNode, error) {
	start := p.pos
	for p.pos < len(p.in) && !strings.ContainsRune("=!<>~'\"();,", rune(p.in[p.pos])) {
		p.pos++
	}
	field := p.in[start:p.pos]
	ft, ok := p.types[field]
	if !ok {
		p.pos = start
		return nil, p.errorf("unknown or unsupported field %q", field)
	}
	var op string
	switch rest := p.in[p.pos:]; {
	case strings.HasPrefix(rest, "=="), strings.HasPrefix(rest, "!="):
		op = rest[:2]
	case strings.HasPrefix(rest, "="):
		end := strings.IndexByte(rest[1:], '=')
		if end < 0 {
			return nil, p.errorf("bad operator")
		}
		op = rest[:end+2]
	default:
		return nil, p.errorf("expected an operator after %q", field)
	}
	p.pos += len(op)
	c := &fiqlCmp{field: field, op: op}
	var raws []fiqlToken
	switch op {
	case "==", "!=", "=sw=", "=gt=", "=ge=", "=lt=", "=le=":
		t, err := p.value()
		if err != nil {
			return nil, err
		}
		raws = []fiqlToken{t}
	case "=in=", "=out=":
		if p.peek() != '(' {
			return nil, p.errorf("%s needs a list like (a,b)", op)
		}
		p.pos++
		for {
			t, err := p.value()
			if err != nil {
				return nil, err
			}
			raws = append(raws, t)
			if p.peek() == ')' {
				p.pos++
				break
			}
			if p.peek() != ',' {
				return nil, p.errorf("expected ',' or ')'")
			}
			p.pos++
		}
	default:
		return nil, p.errorf("unknown operator %q", op)
	}
	switch {
	case (op == "=gt=" || op == "=ge=" || op == "=lt=" || op == "=le=") && ft != ftDate:
		return nil, p.errorf("%s is only available for dates and numbers, not for %q", op, field)
	case op == "=sw=" && ft != ftString:
		return nil, p.errorf("=sw= is only available for text, not for %q", field)
	}
	for _, t := range raws {
		v, err := t.typed(ft)
		if err != nil {
			return nil, p.errorf("%q: %v", field, err)
		}
		if v.null && op != "==" && op != "!=" {
			return nil, p.errorf("null is only allowed with == and !=")
		}
		c.args = append(c.args, v)
	}
	return c, nil
}

// fiqlToken is a value as written: quoted or not.
type fiqlToken struct {
	s      string
	quoted bool
}

func (t fiqlToken) typed(ft fieldType) (fiqlValue, error) {
	if !t.quoted && t.s == "null" {
		return fiqlValue{null: true}, nil
	}
	switch ft {
	case ftBool:
		switch t.s {
		case "true":
			return fiqlValue{b: true}, nil
		case "false":
			return fiqlValue{}, nil
		}
		return fiqlValue{}, fmt.Errorf("%q is not true or false", t.s)
	case ftDate:
		tm, err := parseDate(t.s)
		if err != nil {
			return fiqlValue{}, fmt.Errorf("%q is not an ISO 8601 date", t.s)
		}
		return fiqlValue{t: tm}, nil
	}
	return fiqlValue{s: t.s}, nil
}

// value reads a quoted ('…' or "…", backslash escapes) or bare value.
func (p *fiqlParser) value() (fiqlToken, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		start := p.pos
		for p.pos < len(p.in) && !strings.ContainsRune("'\"();,=!~<>", rune(p.in[p.pos])) {
			p.pos++
		}
		if p.pos == start {
			return fiqlToken{}, p.errorf("missing value")
		}
		return fiqlToken{s: p.in[start:p.pos]}, nil
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
			return fiqlToken{s: b.String(), quoted: true}, nil
		default:
			b.WriteByte(c)
		}
	}
	return fiqlToken{}, p.errorf("unterminated quoted value")
}

// indexable returns the externalNumber values the query requires one of, so
// that matching incidents can be found through the index: for
// externalNumber==x, for =in=, for an AND with such a term, and for an OR
// whose every branch has one. ok is false when the query needs a scan.
func indexable(n fiqlNode) (keys []string, ok bool) {
	switch n := n.(type) {
	case *fiqlCmp:
		if n.field != "externalNumber" || (n.op != "==" && n.op != "=in=") {
			return nil, false
		}
		for _, a := range n.args {
			if a.null {
				return nil, false
			}
			keys = append(keys, strings.ToLower(a.s))
		}
		return keys, true
	case fiqlAnd:
		for _, c := range n {
			if keys, ok := indexable(c); ok {
				return keys, true
			}
		}
	case fiqlOr:
		for _, c := range n {
			k, ok := indexable(c)
			if !ok {
				return nil, false
			}
			keys = append(keys, k...)
		}
		return keys, true
	}
	return nil, false
}
