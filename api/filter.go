package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Klaviyo's filter syntax (developers.klaviyo.com, "Filtering"): an
// expression is operator(field,value), and and(expr,expr,...) combines
// expressions; several top-level expressions separated by commas are
// combined the same way. Values are double-quoted strings, numbers,
// unquoted ISO 8601 date-times, or for any() a list ["a","b"].

// filterExpr is one parsed operator call: a comparison (field and values
// set) or and() (args set).
type filterExpr struct {
	op     string
	field  string
	values []filterValue
	args   []filterExpr
}

// filterValue is one literal: raw is its text, quoted whether it was a
// string.
type filterValue struct {
	raw    string
	quoted bool
}

// errFilter is a syntax error; its text is shown to the client.
type errFilter struct{ msg string }

func (e *errFilter) Error() string { return e.msg }

func filterErrorf(format string, a ...any) error {
	return &errFilter{msg: "Invalid filter: " + fmt.Sprintf(format, a...)}
}

// parseFilter parses a filter parameter into the list of expressions
// that must all hold.
func parseFilter(s string) ([]filterExpr, error) {
	p := &filterParser{s: s}
	var out []filterExpr
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		p.space()
		if p.eof() {
			return out, nil
		}
		if !p.take(',') {
			return nil, filterErrorf("unexpected %q at offset %d", p.s[p.i:p.i+1], p.i)
		}
	}
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) eof() bool { return p.i >= len(p.s) }

func (p *filterParser) space() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *filterParser) take(c byte) bool {
	p.space()
	if !p.eof() && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// word reads an operator or field name: letters, digits, '-', '_', '.'.
func (p *filterParser) word() string {
	p.space()
	start := p.i
	for !p.eof() {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i]
}

func (p *filterParser) expr() (filterExpr, error) {
	op := p.word()
	if op == "" {
		return filterExpr{}, filterErrorf("expected an operator such as equals(...) at offset %d", p.i)
	}
	if !p.take('(') {
		return filterExpr{}, filterErrorf("expected ( after %q", op)
	}
	e := filterExpr{op: op}
	if op == "and" {
		for {
			arg, err := p.expr()
			if err != nil {
				return filterExpr{}, err
			}
			e.args = append(e.args, arg)
			if p.take(')') {
				return e, nil
			}
			if !p.take(',') {
				return filterExpr{}, filterErrorf("expected , or ) in and(...) at offset %d", p.i)
			}
		}
	}
	if e.field = p.word(); e.field == "" {
		return filterExpr{}, filterErrorf("expected a field name in %s(...)", op)
	}
	if !p.take(',') {
		return filterExpr{}, filterErrorf("expected , after the field %q", e.field)
	}
	p.space()
	if p.take('[') {
		for {
			v, err := p.value()
			if err != nil {
				return filterExpr{}, err
			}
			e.values = append(e.values, v)
			if p.take(']') {
				break
			}
			if !p.take(',') {
				return filterExpr{}, filterErrorf("expected , or ] in a list at offset %d", p.i)
			}
		}
	} else {
		v, err := p.value()
		if err != nil {
			return filterExpr{}, err
		}
		e.values = []filterValue{v}
	}
	if !p.take(')') {
		return filterExpr{}, filterErrorf("expected ) after the value of %s(%s,...)", op, e.field)
	}
	return e, nil
}

// value reads a quoted string (with \" and \\ escapes) or a bare literal
// up to the next ',', ')' or ']'.
func (p *filterParser) value() (filterValue, error) {
	p.space()
	if p.eof() {
		return filterValue{}, filterErrorf("expected a value at the end")
	}
	if p.s[p.i] == '"' || p.s[p.i] == '\'' {
		q := p.s[p.i]
		p.i++
		var b strings.Builder
		for !p.eof() {
			c := p.s[p.i]
			p.i++
			switch {
			case c == '\\' && !p.eof():
				b.WriteByte(p.s[p.i])
				p.i++
			case c == q:
				return filterValue{raw: b.String(), quoted: true}, nil
			default:
				b.WriteByte(c)
			}
		}
		return filterValue{}, filterErrorf("unterminated string")
	}
	start := p.i
	for !p.eof() && !strings.ContainsRune(",)]", rune(p.s[p.i])) {
		p.i++
	}
	raw := strings.TrimSpace(p.s[start:p.i])
	if raw == "" {
		return filterValue{}, filterErrorf("expected a value at offset %d", start)
	}
	return filterValue{raw: raw}, nil
}

// Typed readings of a value; the errors name the field.

func (v filterValue) str(field string) (string, error) {
	if !v.quoted {
		return "", filterErrorf("%s takes a quoted string, e.g. \"%s\"", field, v.raw)
	}
	return v.raw, nil
}

func (v filterValue) integer(field string) (int, error) {
	n, err := strconv.Atoi(v.raw)
	if err != nil || v.quoted {
		return 0, filterErrorf("%s takes an integer, not %q", field, v.raw)
	}
	return n, nil
}

func (v filterValue) datetime(field string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v.raw); err == nil {
			return t, nil
		}
	}
	return time.Time{}, filterErrorf("%s takes an ISO 8601 date-time such as 2026-01-02T15:04:05Z, not %q", field, v.raw)
}

// conjuncts are a filter's terms with every and(...) flattened, in
// order: a filter matches when all of them do.
func conjuncts(exprs []filterExpr) []filterExpr {
	var out []filterExpr
	for _, e := range exprs {
		if e.op == "and" {
			out = append(out, conjuncts(e.args)...)
			continue
		}
		out = append(out, e)
	}
	return out
}
