package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"unicode/utf8"
)

// String scans the string at b[i] (its opening quote) and returns the
// index just past its closing quote; b[i+1:end-1] is its raw content.
// escaped reports whether that holds escape sequences (see [Unquote]).
// It refuses control characters and malformed escapes ([ErrSyntax]) and,
// once the string is complete, bytes that are not UTF-8 ([ErrUTF8]); end
// is then the index of the offending byte. Escapes of lone surrogates
// such as \ud800 are accepted, as by json.Valid and Python.
//
// Strings are most of an event's bytes, so String reads eight bytes at a
// time (see special) and checks UTF-8 only for strings that hold a byte
// of 0x80 or above.
func String(b []byte, i int) (end int, escaped bool, err error) {
	if i >= len(b) || b[i] != '"' {
		return i, false, ErrSyntax
	}
	start := i + 1
	var high uint64 // OR of the string's bytes: its high bits flag non-ASCII
	for i = start; ; {
		if i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			m := special(w)
			if m == 0 {
				high |= w
				i += 8
				continue
			}
			high |= w & (m&-m - 1) // the bytes before the special one
			i += bits.TrailingZeros64(m) / 8
		} else {
			for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
				high |= uint64(b[i])
				i++
			}
			if i >= len(b) {
				return i, false, ErrSyntax
			}
		}
		switch b[i] {
		case '"':
			if high&hi8 != 0 && !utf8.Valid(b[start:i]) {
				return start + invalidAt(b[start:i]), false, ErrUTF8
			}
			return i + 1, escaped, nil
		case '\\':
			n := escapeLen(b[i:])
			if n == 0 {
				return i, false, ErrSyntax
			}
			i += n
			escaped = true
		default: // a control character
			return i, false, ErrSyntax
		}
	}
}

// invalidAt returns the index of the first byte of s that is not part of
// valid UTF-8, or len(s).
func invalidAt(s []byte) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(s)
}

const lo8, hi8 = 0x0101010101010101, 0x8080808080808080

// special returns a mask with the high bit set in the lowest byte of w
// (little endian, so the first in memory) that is '"', '\\' or below
// 0x20, or 0 if there is none. It uses the haszero and hasless tricks of
// "Bit Twiddling Hacks": they may also flag bytes above a true hit (the
// subtraction borrows), never below one, so the lowest flag is exact.
func special(w uint64) uint64 {
	q, bs := w^(lo8*'"'), w^(lo8*'\\')
	return ((w-lo8*0x20)&^w | (q-lo8)&^q | (bs-lo8)&^bs) & hi8
}

// escapeLen returns the length of the escape sequence b starts with, or
// 0 if it is not one.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 || !isHex(b[2]) || !isHex(b[3]) || !isHex(b[4]) || !isHex(b[5]) {
			return 0
		}
		return 6
	}
	return 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Unquote returns the value of quoted, a string [String] accepted (quotes
// included). Without escapes that is the raw content, sharing quoted's
// memory; with them a new slice, decoded as encoding/json does (a lone
// surrogate becomes U+FFFD).
func Unquote(quoted []byte) []byte {
	raw := quoted[1 : len(quoted)-1]
	for _, c := range raw {
		if c == '\\' {
			var v string // rare: let encoding/json apply the escapes
			_ = json.Unmarshal(quoted, &v)
			return []byte(v)
		}
	}
	return raw
}
