package batcher

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidMatchesJSONValid compares valid with json.Valid on edge cases
// of the grammar; FuzzParse compares them on everything else.
func TestValidMatchesJSONValid(t *testing.T) {
	cases := []string{
		``, ` `, `{}`, `[]`, ` {} `, `{`, `}`, `[`, `]`, `{]`, `[}`, `[1,]`, `{"a":1,}`, `{,}`, `[,1]`,
		`{"a"}`, `{"a":}`, `{"a" : 1 , "b" :[ true ,false, null ]}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`,
		`""`, `"a`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00G0"`, `"\u00e"`, `"\x"`, "\"a\tb\"",
		"\"a\x7fb\"", "\"\xff\xfe\"", "\"é\"", `"\`, `"\u`,
		`0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `- 1`, `+1`, `1.5.5`, `0x10`,
		`true`, `tru`, `truex`, `false`, `null`, `nul`, `nullnull`, `[true,false,null]`, `1 2`, `{} {}`,
		"\t\r\n[\n1\n]\n", "\v1", "[1]\x00",
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
		strings.Repeat("[", maxDepth-1) + "{}" + strings.Repeat("]", maxDepth-1),
		strings.Repeat("[", maxDepth) + "{}" + strings.Repeat("]", maxDepth),
		strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
		strings.Repeat(`{"a":`, maxDepth) + "[]" + strings.Repeat("}", maxDepth),
	}
	for _, c := range cases {
		if got, want := valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("valid(%.40q) = %t, want %t (json.Valid)", c, got, want)
		}
	}
}
