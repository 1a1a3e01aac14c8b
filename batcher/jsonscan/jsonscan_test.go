package jsonscan_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/webhookd/webhookd/batcher/internal/jsonref"
	"github.com/webhookd/webhookd/batcher/jsonscan"
)

// skipAll scans b as a whole text: one value and white space.
func skipAll(b []byte, depth int) error {
	end, err := jsonscan.Skip(b, jsonscan.Space(b, 0), depth)
	if err == nil && jsonscan.Space(b, end) != len(b) {
		err = jsonscan.ErrSyntax
	}
	return err
}

func nest(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

func nestObj(n int, inner string) string {
	return strings.Repeat(`{"a":`, n) + inner + strings.Repeat("}", n)
}

func TestSkip(t *testing.T) {
	const m = jsonscan.MaxDepth
	tests := []struct {
		in    string
		depth int
		want  error
	}{
		{in: `{"a":[1,-2.5e3,true,false,null,"s",{}],"b":{"c":[]}}`},
		{in: " \t\r\n[ 1 , { \"a\" : 2 } ]\n"},
		{in: `"\u00e9\ud800\/"`},
		{in: nest(m, "")},
		{in: nest(m-1, "{}")},
		{in: nestObj(m, "1")},
		{in: nestObj(m-1, "[]")},
		{in: nest(m-3, "1"), depth: 3},
		{in: nest(m+1, ""), want: jsonscan.ErrDepth},
		{in: nest(m, "{}"), want: jsonscan.ErrDepth},
		{in: nestObj(m, "[]"), want: jsonscan.ErrDepth},
		{in: nest(m-2, "[]"), depth: 3, want: jsonscan.ErrDepth},
		{in: nest(2000, "1"), want: jsonscan.ErrDepth}, // the poison event of issue 13
		{in: strings.Repeat("[", 2000), want: jsonscan.ErrDepth},
		{in: strings.Repeat("[", m) + "x", want: jsonscan.ErrSyntax},
		{in: `1e400`, want: jsonscan.ErrRange},
		{in: `[0,-1e999]`, want: jsonscan.ErrRange},
		{in: strings.Repeat("9", 400), want: jsonscan.ErrRange},
		{in: `{"a":1.7976931348623159e308}`, want: jsonscan.ErrRange},
		{in: `1.7976931348623157e308`},
		{in: `-1.7976931348623157E+308`},
		{in: `1e-400`},
		{in: `-0.0000000001e-99999`},
		{in: `0e99999`},
		{in: `0.` + strings.Repeat("0", 400) + `1e400`},
		{in: strings.Repeat("1", 400) + `e-300`},
		{in: strings.Repeat("1", 308)},
		{in: `1e00308`},
		{in: `1e00309`, want: jsonscan.ErrRange},
		{in: "[\"a\",\"\xff\"]", want: jsonscan.ErrUTF8},
		{in: "{\"\xc0\xaf\":1}", want: jsonscan.ErrUTF8},
		{in: "[\"\xed\xa0\x80\"]", want: jsonscan.ErrUTF8}, // an encoded surrogate
		{in: `["é€😀", "\u2028"]`},
		{in: "[\"\xff\",1e400]", want: jsonscan.ErrUTF8}, // the first fault wins
		{in: "[1e400,\"\xff\"]", want: jsonscan.ErrRange},
		{in: "[\"\xff\"", want: jsonscan.ErrUTF8},
		{in: "[\"\xff", want: jsonscan.ErrSyntax},
		{in: `[1e400`, want: jsonscan.ErrRange},
		{in: `[1,]`, want: jsonscan.ErrSyntax},
		{in: `{"a" 1}`, want: jsonscan.ErrSyntax},
		{in: `{"a":1,}`, want: jsonscan.ErrSyntax},
		{in: `[}`, want: jsonscan.ErrSyntax},
		{in: `1 2`, want: jsonscan.ErrSyntax},
		{in: ``, want: jsonscan.ErrSyntax},
		{in: "\"a\tb\"", want: jsonscan.ErrSyntax},
		{in: `"\x"`, want: jsonscan.ErrSyntax},
		{in: `"\u12"`, want: jsonscan.ErrSyntax},
		{in: `01`, want: jsonscan.ErrSyntax},
		{in: `1.`, want: jsonscan.ErrSyntax},
		{in: `1e+`, want: jsonscan.ErrSyntax},
		{in: `-`, want: jsonscan.ErrSyntax},
		{in: `nul`, want: jsonscan.ErrSyntax},
		{in: `truex`, want: jsonscan.ErrSyntax},
	}
	for _, tt := range tests {
		if got := skipAll([]byte(tt.in), tt.depth); !errors.Is(got, tt.want) {
			t.Errorf("Skip(%.50q, %d) = %v, want %v", tt.in, tt.depth, got, tt.want)
		}
		if ref := jsonref.Fault([]byte(tt.in), tt.depth); !errors.Is(ref, tt.want) {
			t.Errorf("jsonref.Fault(%.50q, %d) = %v, want %v (the test's reference disagrees)", tt.in, tt.depth, ref, tt.want)
		}
	}
}

func TestStringEnd(t *testing.T) {
	tests := []struct {
		in      string
		end     int
		escaped bool
		err     error
	}{
		{in: `"abc"x`, end: 5},
		{in: `""`, end: 2},
		{in: `"0123456789abcdef\"x"`, end: 21, escaped: true},
		{in: `"0123456789\n"`, end: 14, escaped: true},
		{in: `"0123456789abcdef`, end: 17, err: jsonscan.ErrSyntax},
		{in: "\"0123456789\x01\"", end: 11, err: jsonscan.ErrSyntax},
		{in: "\"0123456789\xff\",", end: 11, err: jsonscan.ErrUTF8},
		{in: "\"é€\xe2\x82\"", end: 6, err: jsonscan.ErrUTF8},
		{in: `x"`, end: 0, err: jsonscan.ErrSyntax},
	}
	for _, tt := range tests {
		end, esc, err := jsonscan.String([]byte(tt.in), 0)
		if end != tt.end || esc != tt.escaped || !errors.Is(err, tt.err) {
			t.Errorf("String(%q) = %d, %t, %v; want %d, %t, %v", tt.in, end, esc, err, tt.end, tt.escaped, tt.err)
		}
	}
}

func TestMemberAndUnquote(t *testing.T) {
	b := []byte(`{ "k\u00e9y" :  "v" }`)
	nameEnd, value, err := jsonscan.Member(b, 2)
	if err != nil || nameEnd != 12 || value != 16 {
		t.Fatalf("Member() = %d, %d, %v; want 12, 16, nil", nameEnd, value, err)
	}
	if got := string(jsonscan.Unquote(b[2:nameEnd])); got != "kéy" {
		t.Errorf("Unquote(%s) = %q, want %q", b[2:nameEnd], got, "kéy")
	}
	if got := string(jsonscan.Unquote([]byte(`"plain"`))); got != "plain" {
		t.Errorf("Unquote(plain) = %q", got)
	}
	for _, in := range []string{`"k" 1`, `"k"`, `k:1`} {
		if _, _, err := jsonscan.Member([]byte(in), 0); !errors.Is(err, jsonscan.ErrSyntax) {
			t.Errorf("Member(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

func TestSkipNoAllocs(t *testing.T) {
	b := []byte(`{"data":{"type":"event","id":"x","attributes":{"n":[1,2.5,-3e2],"s":"é\n"}}}`)
	allocs := testing.AllocsPerRun(100, func() { _, _ = jsonscan.Skip(b, 0, 0) })
	if allocs != 0 {
		t.Errorf("Skip allocates %v times, want 0", allocs)
	}
}

// FuzzSkip checks Skip against jsonref, which finds the first fault with
// encoding/json, and that what Skip accepts json.Valid accepts too.
func FuzzSkip(f *testing.F) {
	f.Add([]byte(`{"a":[1,"\u00e9",{"b":null}]}`), uint8(0))
	f.Add([]byte("[\"\xff\",1e400]"), uint8(0))
	f.Add([]byte(nest(jsonscan.MaxDepth, "1")), uint8(1))
	f.Add([]byte(`[123456789012345678901234567890e280]`), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, d uint8) {
		depth := int(d) % (jsonscan.MaxDepth + 1)
		got, want := skipAll(b, depth), jsonref.Fault(b, depth)
		if !errors.Is(got, want) {
			t.Fatalf("Skip(%q, %d) = %v, want %v", b, depth, got, want)
		}
		if got == nil && (!json.Valid(b) || !utf8.Valid(b)) {
			t.Fatalf("Skip(%q) accepts what json.Valid or utf8.Valid refuses", b)
		}
	})
}
