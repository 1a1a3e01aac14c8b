// Package jsonscan holds the primitives shared by webhookd's hand-written
// JSON scanners: batcher's event validator and the test sink's body
// scanner. They exist because the scanners run on every event and every
// request body, where encoding/json's byte-at-a-time state machine costs
// most of the CPU; they read JSON without decoding it.
//
// The primitives also carry the two rules webhookd adds to the JSON
// grammar, so that it refuses what common receivers' parsers refuse
// instead of sending a body every retry of which fails:
//
//   - nesting is limited to [MaxDepth] ([ErrDepth]);
//   - a number must be within the range of a double ([ErrRange]);
//
// and, like RFC 8259 §8.1 for JSON exchanged between systems, strings
// must be UTF-8 ([ErrUTF8]).
//
// Each function reads b from index i and returns the index just past
// what it read, or with an error the index of the offending byte (for
// ErrRange, the number's first byte). A scan stops at the first fault, so
// when a text has several, the error names the one that comes first.
// None allocates, except Number for the rare number it hands to
// strconv.ParseFloat and Unquote for a string with escapes.
package jsonscan

import "errors"

// MaxDepth is the deepest nesting of arrays and objects a JSON text may
// have, counting the outermost one as 1 (so "[[]]" has depth 2). It
// applies to a whole request body as a receiver parses it, envelope
// included.
//
// 64 is the strictest limit among common receivers' default parsers:
// .NET's System.Text.Json and Newtonsoft.Json (since 13.0) refuse deeper
// text by default, Ruby's JSON.parse (and so Rails) refuses depth 101,
// serde_json 128, Python's json.loads fails near 1,000 (its recursion
// limit), Jackson at 1,000 and Go's encoding/json at 10,000. A body any of
// them refuses is refused on every retry, so it must never be sent. Real
// events are far shallower: a Klaviyo Get Event payload nests about 6
// deep. The limit also bounds the scanners' stacks (64 bytes, no
// allocation) whatever the input.
const MaxDepth = 64

// Errors reporting why a text is refused. They are sentinels, compared
// with errors.Is; callers add the offset where it helps.
var (
	// ErrSyntax means the text is not JSON (RFC 8259): what json.Valid
	// refuses.
	ErrSyntax = errors.New("jsonscan: not valid JSON")
	// ErrUTF8 means a string holds bytes that are not UTF-8. json.Valid
	// accepts them, but strict receivers such as Python's json.loads
	// refuse the whole text.
	ErrUTF8 = errors.New("jsonscan: string not UTF-8")
	// ErrDepth means arrays and objects nest deeper than MaxDepth.
	ErrDepth = errors.New("jsonscan: nested too deeply")
	// ErrRange means a number's magnitude is beyond the largest double
	// (about 1.8e308), such as 1e400 or an integer of 400 digits:
	// strconv.ParseFloat reports ErrRange for it, and parsers that read
	// numbers as doubles (JavaScript, Go's encoding/json into any, .NET)
	// refuse it or turn it into an infinity that they cannot write back.
	// A number too small for a double, such as 1e-400, reads as 0
	// everywhere and is accepted.
	ErrRange = errors.New("jsonscan: number out of range of a double")
)

// Space returns the index of the first byte at or after i that is not
// JSON white space (space, tab, line feed, carriage return).
func Space(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// Literal scans the literal true, false or null at b[i].
func Literal(b []byte, i int) (int, error) {
	var lit string
	if i < len(b) {
		switch b[i] {
		case 't':
			lit = "true"
		case 'f':
			lit = "false"
		case 'n':
			lit = "null"
		}
	}
	if lit == "" || len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, ErrSyntax
	}
	return i + len(lit), nil
}
