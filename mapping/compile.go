package mapping

import (
	"bytes"
	"strings"
	"text/template/parse"
	"time"
)

// A program is a template compiled to Go closures, so that rendering does
// not go through text/template's reflection. compile builds one only for
// the part of the template language that mappings use, where it can do
// exactly what text/template does with the same parse tree (for an
// html/template, the tree after escaping, whose escaper commands it runs
// with the functions of escape.go):
//
//   - text, and actions without variable declarations whose value is a
//     string;
//   - if and with (with else, else if, else with) on strings, label maps
//     and key lists, which are true when not empty;
//   - ., $, .Field and $.Field of the template data, .key of a label map
//     (.Labels.team), string literals, parenthesized pipelines;
//   - the mapping's functions (funcs), index of a label map by a string,
//     and html/template's HTML, attribute, RCDATA and URL escapers;
//   - the arguments, argument counts and types text/template accepts for
//     these.
//
// Anything else (range, template, variables, method calls, other builtins,
// JavaScript or CSS contexts, a value of the wrong type) leaves the
// template without a program, and text/template always executes it. A
// program that meets a run-time condition text/template fails on (a label
// map without the key, under missingkey=error) stops and reports false;
// the caller then executes the template with text/template, which produces
// the error. A program therefore never succeeds where text/template fails,
// and when both succeed the output is the same: TestCompiledMatchesTemplate
// and FuzzCompiledMatchesTemplate compare them.
type program struct {
	// constant is set when the template is only text; text is then its
	// whole output and run is nil.
	constant bool
	text     string
	run      step
}

// kind is the static type of a template expression.
type kind uint8

const (
	kindNone   kind = iota // not compiled
	kindString             // string
	kindMap                // map[string]string: Labels, Annotations
	kindList               // []string: the result of keys
	kindTime               // time.Time: StartsAt, EndsAt, Timestamp
	kindData               // *templateData: $, and dot outside with
)

// value is the result of an expression; the field of its kind is set.
type value struct {
	s string
	m map[string]string
	l []string
	t time.Time
}

// expr is a compiled expression. eval reports false where text/template
// would fail.
type expr struct {
	kind kind
	eval func(d *templateData, dot value) (value, bool)
}

// step is a compiled node: it writes its output to w, or reports false
// where text/template would fail.
type step func(w *bytes.Buffer, d *templateData, dot value) bool

// compile returns the program of a parsed template, or nil when the
// template uses anything the compiler does not implement. html says that
// tree is an html/template tree after escaping.
func compile(tree *parse.Tree, html bool) *program {
	if tree == nil || tree.Root == nil {
		return nil
	}
	if text, ok := constantText(tree.Root); ok {
		return &program{constant: true, text: text}
	}
	c := compiler{html: html}
	run, ok := c.list(tree.Root, kindData)
	if !ok {
		return nil
	}
	return &program{run: run}
}

// exec runs p into w and reports whether it succeeded; on false, w holds
// partial output.
func (p *program) exec(w *bytes.Buffer, d *templateData) bool {
	if p.constant {
		w.WriteString(p.text)
		return true
	}
	return p.run(w, d, value{})
}

// constantText returns the output of a list that holds only text.
func constantText(l *parse.ListNode) (string, bool) {
	var b []byte
	for _, n := range l.Nodes {
		t, ok := n.(*parse.TextNode)
		if !ok {
			return "", false
		}
		b = append(b, t.Text...)
	}
	return string(b), true
}

type compiler struct {
	html bool // the tree is an escaped html/template tree
}

func (c compiler) list(l *parse.ListNode, dot kind) (step, bool) {
	if l == nil {
		return nil, false
	}
	steps := make([]step, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		s, ok := c.node(n, dot)
		if !ok {
			return nil, false
		}
		steps = append(steps, s)
	}
	if len(steps) == 1 {
		return steps[0], true
	}
	return func(w *bytes.Buffer, d *templateData, dv value) bool {
		for _, s := range steps {
			if !s(w, d, dv) {
				return false
			}
		}
		return true
	}, true
}

func (c compiler) node(n parse.Node, dot kind) (step, bool) {
	switch n := n.(type) {
	case *parse.TextNode:
		text := string(n.Text)
		return func(w *bytes.Buffer, _ *templateData, _ value) bool {
			w.WriteString(text)
			return true
		}, true
	case *parse.ActionNode:
		return c.action(n.Pipe, dot)
	case *parse.IfNode:
		return c.branch(&n.BranchNode, dot, false)
	case *parse.WithNode:
		return c.branch(&n.BranchNode, dot, true)
	}
	return nil, false
}

// action compiles {{ pipeline }}, which prints a string. An HTML escaper
// that ends the pipeline writes to w directly.
func (c compiler) action(p *parse.PipeNode, dot kind) (step, bool) {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) == 0 {
		return nil, false
	}
	cmds := p.Cmds
	if last := cmds[len(cmds)-1]; len(cmds) > 1 && len(last.Args) == 1 && c.isHTMLEscaper(last.Args[0]) {
		e, ok := c.pipeline(cmds[:len(cmds)-1], dot)
		if !ok || e.kind != kindString {
			return nil, false
		}
		return func(w *bytes.Buffer, d *templateData, dv value) bool {
			v, ok := e.eval(d, dv)
			if ok {
				w.Write(appendHTMLEscaped(w.AvailableBuffer(), v.s))
			}
			return ok
		}, true
	}
	e, ok := c.pipeline(cmds, dot)
	if !ok || e.kind != kindString {
		return nil, false
	}
	return func(w *bytes.Buffer, d *templateData, dv value) bool {
		v, ok := e.eval(d, dv)
		if ok {
			w.WriteString(v.s)
		}
		return ok
	}, true
}

// isHTMLEscaper reports whether n names an html/template escaper that, for
// a plain string, is appendHTMLEscaped.
func (c compiler) isHTMLEscaper(n parse.Node) bool {
	id, ok := n.(*parse.IdentifierNode)
	if !ok || !c.html {
		return false
	}
	switch id.Ident {
	case "_html_template_htmlescaper", "_html_template_attrescaper", "_html_template_rcdataescaper":
		return true
	}
	return false
}

// branch compiles if (with false) and with.
func (c compiler) branch(b *parse.BranchNode, dot kind, with bool) (step, bool) {
	if b.Pipe == nil || len(b.Pipe.Decl) > 0 {
		return nil, false
	}
	cond, ok := c.pipeline(b.Pipe.Cmds, dot)
	if !ok {
		return nil, false
	}
	switch cond.kind {
	case kindString, kindMap, kindList:
	default:
		return nil, false
	}
	bodyDot := dot
	if with {
		bodyDot = cond.kind
	}
	body, ok := c.list(b.List, bodyDot)
	if !ok {
		return nil, false
	}
	var orElse step
	if b.ElseList != nil {
		if orElse, ok = c.list(b.ElseList, dot); !ok {
			return nil, false
		}
	}
	return func(w *bytes.Buffer, d *templateData, dv value) bool {
		v, ok := cond.eval(d, dv)
		switch {
		case !ok:
			return false
		case truth(cond.kind, v):
			if with {
				return body(w, d, v)
			}
			return body(w, d, dv)
		case orElse != nil:
			return orElse(w, d, dv)
		}
		return true
	}, true
}

// truth reports whether v, of kind k, is true for if and with: not empty.
func truth(k kind, v value) bool {
	switch k {
	case kindString:
		return v.s != ""
	case kindMap:
		return len(v.m) > 0
	case kindList:
		return len(v.l) > 0
	}
	return false
}

// pipeline compiles commands joined by |: each command's value is the last
// argument of the next.
func (c compiler) pipeline(cmds []*parse.CommandNode, dot kind) (expr, bool) {
	if len(cmds) == 0 {
		return expr{}, false
	}
	var prev *expr
	for _, cmd := range cmds {
		e, ok := c.command(cmd, dot, prev)
		if !ok {
			return expr{}, false
		}
		prev = &e
	}
	return *prev, true
}

// command compiles one command; final is the value piped into it, if any.
func (c compiler) command(cmd *parse.CommandNode, dot kind, final *expr) (expr, bool) {
	if len(cmd.Args) == 0 {
		return expr{}, false
	}
	if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok {
		return c.call(id.Ident, cmd.Args[1:], dot, final)
	}
	// Anything but a function takes no arguments and no piped value.
	if len(cmd.Args) > 1 || final != nil {
		return expr{}, false
	}
	return c.operand(cmd.Args[0], dot)
}

// operand compiles a value: a field chain, ., $, a string or a
// parenthesized pipeline.
func (c compiler) operand(n parse.Node, dot kind) (expr, bool) {
	switch n := n.(type) {
	case *parse.DotNode:
		return expr{kind: dot, eval: func(_ *templateData, dv value) (value, bool) { return dv, true }}, true
	case *parse.FieldNode:
		return fieldChain(expr{kind: dot, eval: func(_ *templateData, dv value) (value, bool) { return dv, true }}, n.Ident)
	case *parse.VariableNode:
		if len(n.Ident) == 0 || n.Ident[0] != "$" {
			return expr{}, false
		}
		return fieldChain(expr{kind: kindData}, n.Ident[1:])
	case *parse.StringNode:
		v := value{s: n.Text}
		return expr{kind: kindString, eval: func(*templateData, value) (value, bool) { return v, true }}, true
	case *parse.PipeNode:
		if len(n.Decl) > 0 {
			return expr{}, false
		}
		return c.pipeline(n.Cmds, dot)
	}
	return expr{}, false
}

// fieldChain compiles .A.B… applied to base. A field of the template data
// reads it (base is then ignored: the data is always the root); a key of a
// label map looks it up and fails when it is missing, as missingkey=error
// does.
func fieldChain(base expr, idents []string) (expr, bool) {
	e := base
	for _, name := range idents {
		switch e.kind {
		case kindData:
			f, ok := dataField(name)
			if !ok {
				return expr{}, false
			}
			e = f
		case kindMap:
			m := e.eval
			e = expr{kind: kindString, eval: func(d *templateData, dv value) (value, bool) {
				v, ok := m(d, dv)
				if !ok {
					return value{}, false
				}
				s, ok := v.m[name]
				return value{s: s}, ok
			}}
		default:
			return expr{}, false
		}
	}
	return e, true
}

// dataField compiles .name of the template data.
func dataField(name string) (expr, bool) {
	str := func(get func(d *templateData) string) (expr, bool) {
		return expr{kind: kindString, eval: func(d *templateData, _ value) (value, bool) {
			return value{s: get(d)}, true
		}}, true
	}
	labels := func(get func(d *templateData) map[string]string) (expr, bool) {
		return expr{kind: kindMap, eval: func(d *templateData, _ value) (value, bool) {
			return value{m: get(d)}, true
		}}, true
	}
	moment := func(get func(d *templateData) time.Time) (expr, bool) {
		return expr{kind: kindTime, eval: func(d *templateData, _ value) (value, bool) {
			return value{t: get(d)}, true
		}}, true
	}
	switch name {
	case "Key":
		return str(func(d *templateData) string { return d.Key })
	case "Status":
		return str(func(d *templateData) string { return d.Status })
	case "Severity":
		return str(func(d *templateData) string { return d.Severity })
	case "Summary":
		return str(func(d *templateData) string { return d.Summary })
	case "Description":
		return str(func(d *templateData) string { return d.Description })
	case "Source":
		return str(func(d *templateData) string { return d.Source })
	case "URL":
		return str(func(d *templateData) string { return d.URL })
	case "ExternalNumber":
		return str(externalNumberOf)
	case "Labels":
		return labels(func(d *templateData) map[string]string { return d.Labels })
	case "Annotations":
		return labels(func(d *templateData) map[string]string { return d.Annotations })
	case "StartsAt":
		return moment(func(d *templateData) time.Time { return d.StartsAt })
	case "EndsAt":
		return moment(func(d *templateData) time.Time { return d.EndsAt })
	case "Timestamp":
		return moment(func(d *templateData) time.Time { return d.Timestamp })
	}
	return expr{}, false
}

// fn is the Go implementation of a template function, called with its
// arguments in order (unused ones are zero).
type fn func(a, b, c value) value

// call compiles a function call: args are the explicit arguments, final
// the piped value, passed last.
func (c compiler) call(name string, args []parse.Node, dot kind, final *expr) (expr, bool) {
	if name == "trunc" {
		return c.trunc(args, dot, final)
	}
	params, result, f := c.function(name)
	if f == nil {
		return expr{}, false
	}
	in, ok := c.args(params, args, dot, final)
	if !ok {
		return expr{}, false
	}
	return apply(result, in, f), true
}

// function returns the parameters, result and implementation of the
// function name, or a nil fn.
func (c compiler) function(name string) ([]kind, kind, fn) {
	str := []kind{kindString}
	switch name {
	case "upper":
		return str, kindString, func(a, _, _ value) value { return value{s: strings.ToUpper(a.s)} }
	case "lower":
		return str, kindString, func(a, _, _ value) value { return value{s: strings.ToLower(a.s)} }
	case "trim":
		return str, kindString, func(a, _, _ value) value { return value{s: strings.TrimSpace(a.s)} }
	case "replace":
		return []kind{kindString, kindString, kindString}, kindString,
			func(a, b, c value) value { return value{s: replaceFunc(a.s, b.s, c.s)} }
	case "default":
		return []kind{kindString, kindString}, kindString,
			func(a, b, _ value) value { return value{s: defaultFunc(a.s, b.s)} }
	case "join":
		return []kind{kindString, kindList}, kindString,
			func(a, b, _ value) value { return value{s: joinFunc(a.s, b.l)} }
	case "keys":
		return []kind{kindMap}, kindList, func(a, _, _ value) value { return value{l: sortedKeys(a.m)} }
	case "kv":
		return []kind{kindMap}, kindString, func(a, _, _ value) value { return value{s: kvFunc(a.m)} }
	case "rfc3339":
		return []kind{kindTime}, kindString, func(a, _, _ value) value { return value{s: rfc3339Func(a.t)} }
	case "index":
		// The builtin: a missing key yields "", whatever missingkey says.
		return []kind{kindMap, kindString}, kindString, func(a, b, _ value) value { return value{s: a.m[b.s]} }
	}
	if !c.html {
		return nil, kindNone, nil
	}
	switch name {
	case "_html_template_htmlescaper", "_html_template_attrescaper", "_html_template_rcdataescaper":
		return str, kindString, func(a, _, _ value) value { return value{s: htmlEscaped(a.s)} }
	case "_html_template_urlfilter":
		return str, kindString, func(a, _, _ value) value { return value{s: urlFilter(a.s)} }
	case "_html_template_urlnormalizer":
		return str, kindString, func(a, _, _ value) value { return value{s: urlEscaped(a.s, true)} }
	case "_html_template_urlescaper":
		return str, kindString, func(a, _, _ value) value { return value{s: urlEscaped(a.s, false)} }
	}
	return nil, kindNone, nil
}

// trunc compiles trunc N s, whose first argument must be an integer
// constant.
func (c compiler) trunc(args []parse.Node, dot kind, final *expr) (expr, bool) {
	if len(args) == 0 {
		return expr{}, false
	}
	num, ok := args[0].(*parse.NumberNode)
	if !ok || !num.IsInt {
		return expr{}, false
	}
	n := int(num.Int64)
	in, ok := c.args([]kind{kindString}, args[1:], dot, final)
	if !ok {
		return expr{}, false
	}
	return apply(kindString, in, func(a, _, _ value) value { return value{s: truncFunc(n, a.s)} }), true
}

// args compiles the arguments of a call to a function with parameters of
// the kinds in params: the explicit ones, then the piped one.
func (c compiler) args(params []kind, args []parse.Node, dot kind, final *expr) ([]expr, bool) {
	n := len(args)
	if final != nil {
		n++
	}
	if n != len(params) {
		return nil, false
	}
	in := make([]expr, 0, n)
	for i, a := range args {
		if _, ok := a.(*parse.IdentifierNode); ok {
			return nil, false // a call without arguments; no function has none
		}
		e, ok := c.operand(a, dot)
		if !ok || e.kind != params[i] {
			return nil, false
		}
		in = append(in, e)
	}
	if final != nil {
		if final.kind != params[n-1] {
			return nil, false
		}
		in = append(in, *final)
	}
	return in, true
}

// apply returns the expression that calls f with the values of in (one
// to three).
func apply(result kind, in []expr, f fn) expr {
	switch len(in) {
	case 1:
		a := in[0].eval
		return expr{kind: result, eval: func(d *templateData, dv value) (value, bool) {
			va, ok := a(d, dv)
			if !ok {
				return value{}, false
			}
			return f(va, value{}, value{}), true
		}}
	case 2:
		a, b := in[0].eval, in[1].eval
		return expr{kind: result, eval: func(d *templateData, dv value) (value, bool) {
			va, ok := a(d, dv)
			if !ok {
				return value{}, false
			}
			vb, ok := b(d, dv)
			if !ok {
				return value{}, false
			}
			return f(va, vb, value{}), true
		}}
	}
	a, b, c := in[0].eval, in[1].eval, in[2].eval
	return expr{kind: result, eval: func(d *templateData, dv value) (value, bool) {
		va, ok := a(d, dv)
		if !ok {
			return value{}, false
		}
		vb, ok := b(d, dv)
		if !ok {
			return value{}, false
		}
		vc, ok := c(d, dv)
		if !ok {
			return value{}, false
		}
		return f(va, vb, vc), true
	}}
}
