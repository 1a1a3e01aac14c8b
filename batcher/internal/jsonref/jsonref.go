// Package jsonref is the reference that the tests of batcher and
// jsonscan check the hand-written scanners against: it finds the first
// fault of a JSON text with encoding/json's Decoder, slowly and plainly.
package jsonref

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/webhookd/webhookd/batcher/jsonscan"
)

// Fault returns nil if b is one JSON value that jsonscan accepts inside
// depth levels of nesting, and otherwise the jsonscan error for the first
// fault in it, reading token by token: ErrSyntax where json.Decoder
// stops or for data after the value, ErrUTF8 for a string that is not
// UTF-8, ErrDepth for the first container beyond MaxDepth, and ErrRange
// for a number strconv.ParseFloat refuses.
func Fault(b []byte, depth int) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	open := 0
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return jsonscan.ErrSyntax // io.EOF included: empty, or unclosed
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if open++; depth+open > jsonscan.MaxDepth {
					return jsonscan.ErrDepth
				}
			default:
				open--
			}
		case string: // b[before:] starts with separators, all ASCII
			if !utf8.Valid(b[before:dec.InputOffset()]) {
				return jsonscan.ErrUTF8
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(t), 64); err != nil {
				return jsonscan.ErrRange
			}
		}
		if open == 0 {
			break
		}
	}
	if jsonscan.Space(b, int(dec.InputOffset())) != len(b) {
		return jsonscan.ErrSyntax
	}
	return nil
}
