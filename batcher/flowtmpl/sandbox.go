package flowtmpl

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/flosch/pongo2/v6"
)

// bannedTags reach outside the render data (include, import, extends,
// ssi), recurse without bound (macro), only make sense with inheritance
// (block), render into buffers the output budget cannot see (filter,
// spaceless), change how values print (autoescape), or make output from
// nothing (lorem).
var bannedTags = []string{"include", "import", "extends", "ssi", "macro", "block",
	"filter", "spaceless", "autoescape", "lorem", "templatetag"}

// bannedFilters format with a caller-given width or verb
// (stringformat: "%999999999d") or escape for HTML contexts
// (escapejs, urlize, urlizetrunc, linebreaks, linebreaksbr, safeseq are
// HTML helpers; a JSON body has no use for them).
var bannedFilters = []string{"stringformat", "escapejs", "urlize", "urlizetrunc", "linebreaks", "linebreaksbr",
	"safeseq", "wordwrap", "pluralize_with_count"}

// printTag and forTag replace {{ }} and the built-in for; budgetKey is
// the context key of a render's budget.
const (
	printTag  = "_json_print"
	budgetKey = "_flowtmpl_budget"
)

var (
	parseMu sync.Mutex
	setOnce sync.Once
	set     *pongo2.TemplateSet
	setErr  error
)

// noLoader refuses every template name: nothing is loaded from files.
type noLoader struct{}

func (noLoader) Abs(_, name string) string { return name }
func (noLoader) Get(string) (io.Reader, error) {
	return nil, errors.New("flowtmpl: templates cannot load other templates")
}

// sandbox returns the one template set. pongo2's tag and filter tables
// are process-wide, so the print and for tags and the capped and Klaviyo
// filters are registered once, here; this process uses pongo2 for
// nothing else.
func sandbox() (*pongo2.TemplateSet, error) {
	setOnce.Do(func() {
		var errs []error
		errs = append(errs, pongo2.RegisterTag(printTag, parsePrint))
		errs = append(errs, pongo2.ReplaceTag("for", parseFor))
		errs = append(errs, pongo2.ReplaceTag("with", parseWith))
		errs = append(errs, pongo2.ReplaceTag("set", parseSet))
		for name, f := range cappedFilters {
			errs = append(errs, pongo2.ReplaceFilter(name, f))
		}
		for name, f := range klaviyoFilters {
			if pongo2.FilterExists(name) {
				errs = append(errs, pongo2.ReplaceFilter(name, f))
			} else {
				errs = append(errs, pongo2.RegisterFilter(name, f))
			}
		}
		s := pongo2.NewSet("flowtmpl", noLoader{})
		for _, t := range bannedTags {
			errs = append(errs, s.BanTag(t))
		}
		for _, f := range bannedFilters {
			if pongo2.FilterExists(f) {
				errs = append(errs, s.BanFilter(f))
			}
		}
		set, setErr = s, errors.Join(errs...)
	})
	return set, setErr
}

// Template is a parsed, sandboxed body template; safe for concurrent use.
type Template struct {
	tpl *pongo2.Template
	lim Limits
}

// Parse parses src under lim. The error is an *Error of kind ErrSyntax.
func Parse(src string, lim Limits) (*Template, error) {
	lim = lim.withDefaults()
	if len(src) > lim.MaxTemplateBytes {
		return nil, &Error{Kind: ErrBudget, Msg: fmt.Sprintf("the template is longer than %d bytes", lim.MaxTemplateBytes)}
	}
	s, err := sandbox()
	if err != nil {
		return nil, fmt.Errorf("flowtmpl: sandbox: %w", err)
	}
	rewritten, err := rewritePrints(src)
	if err != nil {
		return nil, err
	}
	// FromString writes the set's state (its first-template flag): parses
	// are serialised. Executing templates touches no shared state.
	parseMu.Lock()
	tpl, err := s.FromString(rewritten)
	parseMu.Unlock()
	if err != nil {
		return nil, fromPongo(ErrSyntax, err)
	}
	return &Template{tpl: tpl, lim: lim}, nil
}

// Render renders t with data, whose values are what encoding/json
// produces (map[string]any, []any, string, float64 or json.Number,
// bool, nil); see Context. The output is not checked for JSON: see
// RenderJSON.
func (t *Template) Render(data map[string]any) (out []byte, err error) {
	b := &budget{lim: t.lim, deadline: time.Now().Add(t.lim.MaxRenderTime)}
	w := &capWriter{b: b}
	ctx := pongo2.Context{budgetKey: b}
	for k, v := range data {
		ctx[k] = v
	}
	defer func() {
		if r := recover(); r != nil {
			if be, ok := r.(*Error); ok {
				out, err = nil, be
				return
			}
			out, err = nil, &Error{Kind: ErrRender, Msg: fmt.Sprintf("the template failed: %v", r)}
		}
	}()
	if err := t.tpl.ExecuteWriterUnbuffered(ctx, w); err != nil {
		return nil, fromPongo(ErrRender, err)
	}
	return w.buf, nil
}

// budget is one render's account of its Limits.
type budget struct {
	lim        Limits
	deadline   time.Time
	written    int
	iterations int
	checks     int
	held       int // bytes bound by with and set, never credited back
}

// budgetOf finds the render's budget in an execution context.
func budgetOf(ctx *pongo2.ExecutionContext) *budget {
	b, _ := ctx.Public[budgetKey].(*budget)
	if b == nil {
		panic(&Error{Kind: ErrRender, Msg: "no render budget"})
	}
	return b
}

// fail stops the render: the panic unwinds pongo2 (which recovers
// nothing) up to Render.
func (b *budget) fail(format string, args ...any) {
	panic(&Error{Kind: ErrBudget, Msg: fmt.Sprintf(format, args...)})
}

// tick checks the clock; reading it on every call would cost more than
// most prints, so it is read every 64th.
func (b *budget) tick() {
	b.checks++
	if b.checks%64 == 0 && time.Now().After(b.deadline) {
		b.fail("the template ran longer than %v", b.lim.MaxRenderTime)
	}
}

// iterate charges one loop iteration and reads the clock every time:
// one iteration's body may cost as much as the template's whole
// straight-line code (a chain of filters each building a value of up to
// maxValueBytes), so sampling as tick does would let a loop overrun its
// time budget by 64 bodies. Iterations are capped, so this costs at most
// MaxIterations clock reads.
func (b *budget) iterate() {
	b.iterations++
	if b.iterations > b.lim.MaxIterations {
		b.fail("the template's loops ran more than %d iterations", b.lim.MaxIterations)
	}
	if time.Now().After(b.deadline) {
		b.fail("the template ran longer than %v", b.lim.MaxRenderTime)
	}
}

// grow accounts n more bytes of output (or of a value about to be made).
func (b *budget) grow(n int) {
	b.written += n
	if b.written > b.lim.MaxOutputBytes {
		b.fail("the output is larger than %d bytes", b.lim.MaxOutputBytes)
	}
}

// heldFactor times MaxOutputBytes caps what with and set bind in one
// render (1 MiB by default): far more than a body needs, far less than
// hundreds of 256 KiB values.
const heldFactor = 4

// hold charges a value bound by with or set: a string's bytes, a list's
// or object's elements at 16 bytes each (a list made by make_list from
// a long string is mostly string headers).
func (b *budget) hold(v *pongo2.Value) {
	switch {
	case v.IsString():
		b.held += len(v.String())
	case v.CanSlice() || reflect.ValueOf(v.Interface()).Kind() == reflect.Map:
		b.held += 16 * v.Len()
	}
	if b.held > heldFactor*b.lim.MaxOutputBytes {
		b.fail("the template's with and set values hold more than %d bytes", heldFactor*b.lim.MaxOutputBytes)
	}
}

// capWriter is the render's output; it fails past the output cap.
type capWriter struct {
	b   *budget
	buf []byte
}

func (w *capWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.b.lim.MaxOutputBytes {
		w.b.fail("the output is larger than %d bytes", w.b.lim.MaxOutputBytes)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *capWriter) WriteString(s string) (int, error) {
	if len(w.buf)+len(s) > w.b.lim.MaxOutputBytes {
		w.b.fail("the output is larger than %d bytes", w.b.lim.MaxOutputBytes)
	}
	w.buf = append(w.buf, s...)
	return len(s), nil
}

// fromPongo turns a pongo2 error into an *Error of kind, keeping its line
// and message but not pongo2's framing (which quotes the template name).
func fromPongo(kind, err error) *Error {
	var pe *pongo2.Error
	if errors.As(err, &pe) {
		msg := "invalid template"
		if pe.OrigError != nil {
			msg = pe.OrigError.Error()
		}
		msg = strings.ReplaceAll(msg, printTag, "{{ }}")
		var be *Error
		if errors.As(pe.OrigError, &be) {
			return be
		}
		return &Error{Kind: kind, Line: pe.Line, Msg: msg}
	}
	return &Error{Kind: kind, Msg: err.Error()}
}
