// Package flowtmpl renders the body of a flow webhook: a Django template
// (Klaviyo's syntax) over the triggering event and its profile, run in a
// sandbox and printing JSON.
//
// The engine is github.com/flosch/pongo2/v6, restricted:
//
//   - No loaders: include, import, extends, ssi, block and macro are
//     banned at parse time, and the template set's loader refuses every
//     name, so nothing outside the render data is reachable.
//   - Budgets (Limits): the template's size; the output's size (every
//     write is counted, a write past the cap stops the render); loop
//     iterations summed over all loops; what with and set bind (four
//     times the output cap); wall-clock render time, checked
//     at every loop iteration and every 64th print. Filters that could
//     grow a value beyond the output cap in one call (add, join, center,
//     ljust, rjust, floatformat) or over repeated calls (addslashes,
//     escape, urlencode, linenumbers) are replaced by capped versions;
//     stringformat, escapejs, lorem, filter, spaceless, autoescape and
//     the like are banned.
//   - Printing suits JSON: {{ x }} is rewritten to a print tag of this
//     package, which writes strings JSON-escaped (without quotes; |safe
//     prints them raw), numbers as JSON does (12.5, not 12.500000),
//     booleans as true/false, null as nothing, and lists and objects as
//     compact JSON.
//
// A panic inside pongo2 (an integer division by zero, say) is recovered
// and becomes a render error.
package flowtmpl

import (
	"errors"
	"fmt"
	"time"
)

// Limits are a template's budgets. Zero fields take the defaults shown.
type Limits struct {
	// MaxTemplateBytes caps the template source (16 KiB; Klaviyo's body
	// field is a JSON payload of a few hundred bytes).
	MaxTemplateBytes int
	// MaxOutputBytes caps the rendered body (256 KiB).
	MaxOutputBytes int
	// MaxIterations caps the loop iterations of one render, all loops
	// together (10,000).
	MaxIterations int
	// MaxRenderTime caps one render's wall-clock time (100 ms).
	MaxRenderTime time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxTemplateBytes = 16 << 10
	DefaultMaxOutputBytes   = 256 << 10
	DefaultMaxIterations    = 10_000
	DefaultMaxRenderTime    = 100 * time.Millisecond
)

func (l Limits) withDefaults() Limits {
	if l.MaxTemplateBytes <= 0 {
		l.MaxTemplateBytes = DefaultMaxTemplateBytes
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if l.MaxIterations <= 0 {
		l.MaxIterations = DefaultMaxIterations
	}
	if l.MaxRenderTime <= 0 {
		l.MaxRenderTime = DefaultMaxRenderTime
	}
	return l
}

// Errors callers branch on; an *Error wraps one of them.
var (
	// ErrSyntax: the template does not parse, or uses a banned tag or filter.
	ErrSyntax = errors.New("flowtmpl: template error")
	// ErrRender: the template failed while rendering (a filter error, a panic).
	ErrRender = errors.New("flowtmpl: render error")
	// ErrBudget: a render hit one of the Limits.
	ErrBudget = errors.New("flowtmpl: budget exceeded")
	// ErrNotJSON: the output is not valid JSON.
	ErrNotJSON = errors.New("flowtmpl: output is not valid JSON")
)

// Error is a template failure, with the template line when known.
type Error struct {
	Kind error  // ErrSyntax, ErrRender, ErrBudget or ErrNotJSON
	Line int    // 1-based line of the template; 0 when unknown
	Msg  string // what went wrong, without data values
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Kind }
