package batcher

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/webhookd/webhookd/batcher/internal/jsonref"
)

// TestScanMatchesReference compares scan with jsonref, which finds the
// first fault with encoding/json, on edge cases of the grammar and of the
// limits, inside and outside the top-level object scan walks itself;
// FuzzParse compares them on everything else.
func TestScanMatchesReference(t *testing.T) {
	deep := func(n int, inner string) string { return strings.Repeat("[", n) + inner + strings.Repeat("]", n) }
	deepObj := func(n int, inner string) string { return strings.Repeat(`{"a":`, n) + inner + strings.Repeat("}", n) }
	values := []string{
		``, ` `, `{}`, `[]`, ` {} `, `{`, `}`, `[`, `]`, `{]`, `[}`, `[1,]`, `{"a":1,}`, `{,}`, `[,1]`,
		`{"a"}`, `{"a":}`, `{"a" : 1 , "b" :[ true ,false, null ]}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`,
		`""`, `"a`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00G0"`, `"\u00e"`, `"\x"`, "\"a\tb\"",
		"\"a\x7fb\"", "\"\xff\xfe\"", "\"é\"", `"\`, `"\u`,
		`0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `- 1`, `+1`, `1.5.5`, `0x10`,
		`1e400`, `-1e999`, `1e-400`, strings.Repeat("7", 400), `1.7976931348623159e308`,
		`true`, `tru`, `truex`, `false`, `null`, `nul`, `nullnull`, `[true,false,null]`, `1 2`, `{} {}`,
		"\t\r\n[\n1\n]\n", "\v1", "[1]\x00",
		deep(MaxDepth, ""), deep(MaxDepth+1, ""), deep(MaxDepth-1, "{}"), deep(MaxDepth, "{}"),
		deepObj(MaxDepth, "1"), deepObj(MaxDepth, "[]"), deepObj(MaxDepth-1, "[]"),
		deep(2000, ""), strings.Repeat("[", 2000),
	}
	var cases []string
	for _, v := range values {
		// v alone, as data.id, as a member of data and of the top level.
		cases = append(cases, v, `{"data":{"id":`+v+`}}`, `{"data":{"x":`+v+`,"id":"i"}}`,
			`{"data":`+v+`}`, `{"x":`+v+`}`, "{\"\xff\":"+v+`}`)
	}
	for _, c := range cases {
		_, _, _, got := scan([]byte(c))
		if want := jsonref.Fault([]byte(c), envelopeDepth); !errors.Is(got, want) {
			t.Errorf("scan(%.50q) = %v, want %v", c, got, want)
		}
		if got == nil && !json.Valid([]byte(c)) {
			t.Errorf("scan(%.50q) accepts what json.Valid refuses", c)
		}
	}
}
