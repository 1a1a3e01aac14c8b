package batcher

import (
	"bytes"

	"github.com/webhookd/webhookd/batcher/jsonscan"
)

// envelopeDepth is how deep AppendEnvelope nests a payload: inside the
// body object, its data array and the event's object.
const envelopeDepth = 3

// MaxDepth is the deepest nesting of arrays and objects [Parse] accepts in
// an event, counting the payload object as 1: [jsonscan.MaxDepth], the
// limit for a whole request body as receivers parse it (64, the default
// of .NET's JSON parsers, the strictest common one), less the
// envelopeDepth levels the envelope wraps around each payload. Get Event
// payloads nest about 6 deep.
const MaxDepth = jsonscan.MaxDepth - envelopeDepth

// scan validates b as an event payload in a single pass and finds the
// value of data.id: the last "id" member, when it is a string, of the
// last "data" member of the top-level object, when that is an object
// (keys compared after unescaping, the last of duplicates winning, as
// encoding/json does for maps). obj reports whether b is an object;
// idAt < 0 when there is no id, otherwise b[idAt:idEnd] is the quoted
// string. err is a jsonscan error for the first fault in b, judged as
// nested envelopeDepth deep.
//
// It exists because it runs on every event delivered: json.Valid's
// byte-at-a-time state machine followed by a walk to data.id cost about
// 5–9 µs per 1 KB event, most of the dispatcher's CPU at 100k events/s;
// jsonscan's word-at-a-time string scan costs a fraction of that.
// FuzzParse checks it against encoding/json.
func scan(b []byte) (obj bool, idAt, idEnd int, err error) {
	i := jsonscan.Space(b, 0)
	obj = i < len(b) && b[i] == '{'
	var end int
	if obj {
		end, idAt, idEnd, err = find(b, i, envelopeDepth, "data", "id")
	} else {
		end, err = jsonscan.Skip(b, i, envelopeDepth)
	}
	if err == nil && jsonscan.Space(b, end) != len(b) {
		err = jsonscan.ErrSyntax
	}
	return obj, idAt, idEnd, err
}

// find scans the object at b[i], inside depth levels of nesting, and
// returns the index just past it and where the string at path is:
// b[at:atEnd], quoted, or at = -1. path[0] names the object's member,
// path[1:] the members below it; the last member of a name counts, and
// one that is not an object (or, at the end of path, not a string) clears
// what an earlier one found.
func find(b []byte, i, depth int, path ...string) (end, at, atEnd int, err error) {
	if depth >= jsonscan.MaxDepth {
		return i, -1, -1, jsonscan.ErrDepth
	}
	at, atEnd = -1, -1
	if i = jsonscan.Space(b, i+1); i < len(b) && b[i] == '}' {
		return i + 1, at, atEnd, nil
	}
	for {
		nameEnd, v, err := jsonscan.Member(b, i)
		if err != nil {
			return v, -1, -1, err
		}
		hit := keyIs(b[i:nameEnd], path[0])
		switch {
		case hit && len(path) > 1 && v < len(b) && b[v] == '{':
			i, at, atEnd, err = find(b, v, depth+1, path[1:]...)
		case hit && len(path) == 1 && v < len(b) && b[v] == '"':
			i, _, err = jsonscan.String(b, v)
			at, atEnd = v, i
		default:
			if hit {
				at, atEnd = -1, -1
			}
			i, err = jsonscan.Skip(b, v, depth+1)
		}
		if err != nil {
			return i, -1, -1, err
		}
		switch i = jsonscan.Space(b, i); {
		case i < len(b) && b[i] == ',':
			i = jsonscan.Space(b, i+1)
		case i < len(b) && b[i] == '}':
			return i + 1, at, atEnd, nil
		default:
			return i, -1, -1, jsonscan.ErrSyntax
		}
	}
}

// keyIs reports whether the quoted key equals name once unescaped.
func keyIs(quoted []byte, name string) bool {
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	return string(jsonscan.Unquote(quoted)) == name
}
