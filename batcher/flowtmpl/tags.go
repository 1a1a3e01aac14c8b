package flowtmpl

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"

	"github.com/flosch/pongo2/v6"
)

// printNode is {{ expr }}: it writes expr's value as a JSON body expects.
type printNode struct {
	expr pongo2.IEvaluator
}

func parsePrint(_ *pongo2.Parser, _ *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	if args.Remaining() > 0 {
		return nil, args.Error("Unexpected tokens after the expression.", nil)
	}
	return &printNode{expr: expr}, nil
}

func (n *printNode) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	b := budgetOf(ctx)
	b.tick()
	v, err := n.expr.Evaluate(ctx)
	if err != nil {
		return err
	}
	s := format(v, n.expr.FilterApplied("safe"))
	b.grow(len(s))
	_, _ = w.WriteString(s)
	return nil
}

// format renders v for a JSON body: strings JSON-escaped unless raw,
// numbers and booleans as JSON literals, nil as nothing (Django's
// templates print missing values as empty), other values as JSON.
func format(v *pongo2.Value, raw bool) string {
	if v.IsNil() {
		return ""
	}
	rv := reflect.ValueOf(v.Interface())
	switch rv.Kind() {
	case reflect.String:
		if raw {
			return rv.String()
		}
		return escapeString(rv.String())
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return formatFloat(rv.Float())
	}
	if n, ok := v.Interface().(json.Number); ok {
		return n.String()
	}
	out, err := json.Marshal(v.Interface())
	if err != nil {
		return escapeString(v.String())
	}
	return string(out)
}

// formatFloat writes f as the shortest decimal that reads back as f, in
// plain notation (12.5, 3, 0.001); NaN and infinities, which JSON cannot
// carry, print as null.
func formatFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// escapeString is s as the inside of a JSON string: quotes, backslashes
// and control characters escaped; <, > and & kept (the body is not HTML).
func escapeString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	out := buf.Bytes()
	return string(out[1 : len(out)-2]) // drop the quotes and the newline
}

// forNode is Django's {% for x in xs %} / {% for k, v in map %}, with
// reversed, {% empty %} and forloop (counter, counter0, revcounter,
// revcounter0, first, last, parentloop); every iteration is charged to
// the render's budget.
type forNode struct {
	key, value string
	obj        pongo2.IEvaluator
	reversed   bool
	body       *pongo2.NodeWrapper
	empty      *pongo2.NodeWrapper
}

func parseFor(doc *pongo2.Parser, _ *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	n := &forNode{}
	key := args.MatchType(pongo2.TokenIdentifier)
	if key == nil {
		return nil, args.Error("Expected a loop variable after 'for'.", nil)
	}
	n.key = key.Val
	if args.Match(pongo2.TokenSymbol, ",") != nil {
		val := args.MatchType(pongo2.TokenIdentifier)
		if val == nil {
			return nil, args.Error("Expected a second loop variable after ','.", nil)
		}
		n.value = val.Val
	}
	if args.Match(pongo2.TokenKeyword, "in") == nil {
		return nil, args.Error("Expected 'in'.", nil)
	}
	obj, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	n.obj = obj
	if args.Match(pongo2.TokenIdentifier, "reversed") != nil {
		n.reversed = true
	}
	if args.Remaining() > 0 {
		return nil, args.Error("Malformed for tag.", nil)
	}
	body, end, err := doc.WrapUntilTag("empty", "endfor")
	if err != nil {
		return nil, err
	}
	n.body = body
	if end.Count() > 0 {
		return nil, end.Error("No arguments allowed here.", nil)
	}
	if body.Endtag == "empty" {
		empty, end, err := doc.WrapUntilTag("endfor")
		if err != nil {
			return nil, err
		}
		if end.Count() > 0 {
			return nil, end.Error("No arguments allowed here.", nil)
		}
		n.empty = empty
	}
	return n, nil
}

func (n *forNode) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	b := budgetOf(ctx)
	fctx := pongo2.NewChildExecutionContext(ctx)
	obj, err := n.obj.Evaluate(fctx)
	if err != nil {
		return err
	}
	parent := ctx.Private["forloop"]
	var loopErr *pongo2.Error
	obj.IterateOrder(func(idx, count int, key, value *pongo2.Value) bool {
		b.iterate()
		fctx.Private["forloop"] = map[string]any{
			"counter": idx + 1, "counter0": idx, "revcounter": count - idx, "revcounter0": count - idx - 1,
			"first": idx == 0, "last": idx == count-1, "parentloop": parent,
		}
		fctx.Private[n.key] = key
		if n.value != "" && value != nil {
			fctx.Private[n.value] = value
		}
		if err := n.body.Execute(fctx, w); err != nil {
			loopErr = err
			return false
		}
		return true
	}, func() {
		if n.empty != nil {
			loopErr = n.empty.Execute(fctx, w)
		}
	}, n.reversed, false)
	return loopErr
}

// withNode is {% with a=x b=y %}…{% endwith %} (or the older
// {% with x as a %}), and setNode {% set a = x %}: as pongo2's, except
// that every value they bind is charged to the render's budget (hold),
// since it stays alive for the rest of its block.
type withNode struct {
	names []string
	exprs []pongo2.IEvaluator
	body  *pongo2.NodeWrapper
}

func parseWith(doc *pongo2.Parser, _ *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	if args.Count() == 0 {
		return nil, args.Error("Tag 'with' requires at least one argument.", nil)
	}
	body, end, err := doc.WrapUntilTag("endwith")
	if err != nil {
		return nil, err
	}
	if end.Count() > 0 {
		return nil, end.Error("Arguments not allowed here.", nil)
	}
	oldStyle := false
	for i := range args.Count() {
		if args.PeekN(i, pongo2.TokenKeyword, "as") != nil {
			oldStyle = true
			break
		}
	}
	n := &withNode{body: body}
	for args.Remaining() > 0 {
		var name *pongo2.Token
		var expr pongo2.IEvaluator
		if oldStyle {
			if expr, err = args.ParseExpression(); err != nil {
				return nil, err
			}
			if args.Match(pongo2.TokenKeyword, "as") == nil {
				return nil, args.Error("Expected 'as' keyword.", nil)
			}
			if name = args.MatchType(pongo2.TokenIdentifier); name == nil {
				return nil, args.Error("Expected an identifier", nil)
			}
		} else {
			if name = args.MatchType(pongo2.TokenIdentifier); name == nil {
				return nil, args.Error("Expected an identifier", nil)
			}
			if args.Match(pongo2.TokenSymbol, "=") == nil {
				return nil, args.Error("Expected '='.", nil)
			}
			if expr, err = args.ParseExpression(); err != nil {
				return nil, err
			}
		}
		n.names, n.exprs = append(n.names, name.Val), append(n.exprs, expr)
	}
	return n, nil
}

func (n *withNode) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	b := budgetOf(ctx)
	wctx := pongo2.NewChildExecutionContext(ctx)
	for i, expr := range n.exprs {
		v, err := expr.Evaluate(ctx)
		if err != nil {
			return err
		}
		b.hold(v)
		wctx.Private[n.names[i]] = v
	}
	return n.body.Execute(wctx, w)
}

type setNode struct {
	name string
	expr pongo2.IEvaluator
}

func parseSet(_ *pongo2.Parser, _ *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	name := args.MatchType(pongo2.TokenIdentifier)
	if name == nil {
		return nil, args.Error("Expected an identifier.", nil)
	}
	if args.Match(pongo2.TokenSymbol, "=") == nil {
		return nil, args.Error("Expected '='.", nil)
	}
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	if args.Remaining() > 0 {
		return nil, args.Error("Malformed 'set'-tag arguments.", nil)
	}
	return &setNode{name: name.Val, expr: expr}, nil
}

func (n *setNode) Execute(ctx *pongo2.ExecutionContext, _ pongo2.TemplateWriter) *pongo2.Error {
	v, err := n.expr.Evaluate(ctx)
	if err != nil {
		return err
	}
	budgetOf(ctx).hold(v)
	ctx.Private[n.name] = v
	return nil
}
