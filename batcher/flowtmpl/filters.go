package flowtmpl

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flosch/pongo2/v6"
)

// maxValueBytes caps what one filter call may build (a string made by
// add, append, join or padding). Filters see no render budget, so this
// is a fixed cap of the default output size: no value longer than the
// largest allowed output is ever useful.
const maxValueBytes = DefaultMaxOutputBytes

var errTooLong = errors.New("the value would be longer than the output budget")

func filterErr(name string, err error) *pongo2.Error {
	return &pongo2.Error{Sender: "filter:" + name, OrigError: err}
}

// cappedFilters replace Django built-ins that can build a value of any
// size in one call.
var cappedFilters = map[string]pongo2.FilterFunction{
	"add":         filterAdd,
	"join":        filterJoin,
	"ljust":       pad("ljust", func(s, p string) string { return s + p }),
	"rjust":       pad("rjust", func(s, p string) string { return p + s }),
	"center":      pad("center", center),
	"floatformat": filterFloatformat,
	// These grow their input on every application (addslashes doubles
	// a run of quotes), so a chain of them is refused once a value
	// passes the cap instead of growing without bound.
	"addslashes":  grows("addslashes", strings.NewReplacer(`\`, `\\`, `"`, `\"`, "'", `\'`).Replace),
	"escape":      grows("escape", htmlEscaper.Replace),
	"e":           grows("e", htmlEscaper.Replace),
	"urlencode":   grows("urlencode", url.QueryEscape),
	"linenumbers": grows("linenumbers", lineNumbers),
}

// htmlEscaper is Django's escape: & < > " and '.
var htmlEscaper = strings.NewReplacer("&", "&amp;", ">", "&gt;", "<", "&lt;", `"`, "&quot;", "'", "&#39;")

// grows is a string filter f whose result may not pass maxValueBytes.
func grows(name string, f func(string) string) pongo2.FilterFunction {
	return func(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		out := f(in.String())
		if len(out) > maxValueBytes {
			return nil, filterErr(name, errTooLong)
		}
		return pongo2.AsValue(out), nil
	}
}

// lineNumbers is Django's linenumbers: "1. " before the first line, and
// so on.
func lineNumbers(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strconv.Itoa(i+1) + ". " + l
	}
	return strings.Join(lines, "\n")
}

// klaviyoFilters are the filters of Klaviyo's template glossary that
// Django lacks, implemented as its glossary describes them.
var klaviyoFilters = map[string]pongo2.FilterFunction{
	"lookup":                 filterLookup,
	"abs":                    numeric(math.Abs),
	"ceil":                   numeric(math.Ceil),
	"floor":                  numeric(math.Floor),
	"round":                  filterRound,
	"at_least":               bound(math.Max),
	"at_most":                bound(math.Min),
	"append":                 filterAppend,
	"capitalize":             filterCapitalize,
	"base64_encode":          encode(base64.StdEncoding.EncodeToString),
	"base64_url_safe_encode": encode(base64.URLEncoding.EncodeToString),
	"base64_decode":          decode(base64.StdEncoding.DecodeString),
	"base64_url_safe_decode": decode(base64.URLEncoding.DecodeString),
}

// number returns v as a Value of the narrowest kind: integers stay
// integers, so {{ 2|add:3 }} prints 5 and {{ 2.5|add:1 }} 3.5.
func number(f float64, integer bool) *pongo2.Value {
	if integer && f >= math.MinInt64 && f <= math.MaxInt64 {
		return pongo2.AsValue(int(f))
	}
	return pongo2.AsValue(f)
}

func filterAdd(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	if in.IsNumber() && param.IsNumber() {
		if in.IsInteger() && param.IsInteger() {
			return pongo2.AsValue(in.Integer() + param.Integer()), nil
		}
		return pongo2.AsValue(in.Float() + param.Float()), nil
	}
	a, b := in.String(), param.String()
	if len(a)+len(b) > maxValueBytes {
		return nil, filterErr("add", errTooLong)
	}
	return pongo2.AsValue(a + b), nil
}

func filterAppend(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	a, b := in.String(), param.String()
	if len(a)+len(b) > maxValueBytes {
		return nil, filterErr("append", errTooLong)
	}
	return pongo2.AsValue(a + b), nil
}

func filterJoin(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	if !in.CanSlice() || in.IsString() {
		return in, nil
	}
	sep := param.String()
	var b strings.Builder
	for i := range in.Len() {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(in.Index(i).String())
		if b.Len() > maxValueBytes {
			return nil, filterErr("join", errTooLong)
		}
	}
	return pongo2.AsValue(b.String()), nil
}

// pad builds ljust, rjust and center: width is capped before any
// padding is allocated.
func pad(name string, place func(s, p string) string) pongo2.FilterFunction {
	return func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		s := in.String()
		width := param.Integer()
		if width > maxValueBytes {
			return nil, filterErr(name, errTooLong)
		}
		n := width - utf8.RuneCountInString(s)
		if n <= 0 {
			return pongo2.AsValue(s), nil
		}
		return pongo2.AsValue(place(s, strings.Repeat(" ", n))), nil
	}
}

func center(s, p string) string {
	left := len(p) / 2
	return p[:left] + s + p[left:]
}

// filterFloatformat is Django's: floatformat:N rounds to N decimals; a
// negative N (default -1) shows them only when the number has a
// fraction. |N| is capped at 20.
func filterFloatformat(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	f := in.Float()
	n := -1
	if !param.IsNil() {
		n = param.Integer()
	}
	if n > 20 || n < -20 {
		return nil, filterErr("floatformat", errors.New("at most 20 decimals"))
	}
	if n < 0 {
		if f == math.Trunc(f) {
			return pongo2.AsValue(strconv.FormatFloat(f, 'f', 0, 64)), nil
		}
		n = -n
	}
	return pongo2.AsValue(strconv.FormatFloat(f, 'f', n, 64)), nil
}

// filterLookup is Klaviyo's person|lookup:'Prop': the member of an object
// named by the parameter (which may contain spaces or start with $), or
// the element of a list at an index; nothing when absent.
func filterLookup(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	switch m := in.Interface().(type) {
	case map[string]any:
		return pongo2.AsValue(m[param.String()]), nil
	case []any:
		if i := param.Integer(); param.IsNumber() && i >= 0 && i < len(m) {
			return pongo2.AsValue(m[i]), nil
		}
	}
	return pongo2.AsValue(nil), nil
}

func numeric(f func(float64) float64) pongo2.FilterFunction {
	return func(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		if in.IsInteger() {
			return number(f(float64(in.Integer())), true), nil
		}
		return pongo2.AsValue(f(in.Float())), nil
	}
}

// filterRound rounds to the parameter's decimals (default 0).
func filterRound(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	n := 0
	if !param.IsNil() {
		n = min(max(param.Integer(), 0), 15)
	}
	p := math.Pow(10, float64(n))
	r := math.Round(in.Float()*p) / p
	return number(r, n == 0), nil
}

func bound(f func(a, b float64) float64) pongo2.FilterFunction {
	return func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		return number(f(in.Float(), param.Float()), in.IsInteger() && param.IsInteger()), nil
	}
}

func filterCapitalize(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	s := in.String()
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return in, nil
	}
	return pongo2.AsValue(string(unicode.ToUpper(r)) + s[n:]), nil
}

// encode is a base64 encoding: a third longer per call, so capped.
func encode(f func([]byte) string) pongo2.FilterFunction {
	return grows("base64_encode", func(s string) string { return f([]byte(s)) })
}

func decode(f func(string) ([]byte, error)) pongo2.FilterFunction {
	return func(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		b, err := f(in.String())
		if err != nil {
			return nil, filterErr("base64_decode", fmt.Errorf("not base64: %w", err))
		}
		return pongo2.AsValue(string(b)), nil
	}
}
