package batcher

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Parse validates an event message body and returns its external id. The
// body must be a UTF-8 JSON object (see [ErrNotJSON], [ErrNotUTF8],
// [ErrNotObject]); it is then safe to embed unchanged as Event.Payload.
//
// The id is data.id when that is a non-empty JSON string, and msgID (the
// Nats-Msg-Id header) otherwise; with neither, Parse returns [ErrNoID].
// Keys match exactly and, as with encoding/json maps, the last of duplicate
// keys wins.
//
// Parse runs on every event, so it validates with one json.Valid pass and
// then walks only the top-level object and data, skipping other values
// without decoding them.
func Parse(body []byte, msgID string) (string, error) {
	if !json.Valid(body) {
		return "", ErrNotJSON
	}
	if !utf8.Valid(body) {
		return "", ErrNotUTF8
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return "", ErrNotObject
	}
	if v, ok := member(body, i, "data"); ok && body[v] == '{' {
		if w, ok := member(body, v, "id"); ok && body[w] == '"' {
			if id := unquote(body[w:stringEnd(body, w)]); id != "" {
				return id, nil
			}
		}
	}
	if msgID != "" {
		return msgID, nil
	}
	return "", ErrNoID
}

// The helpers below assume b is valid JSON and index it without bounds
// checks of their own; Parse calls them only after json.Valid.

// member returns the start of the value of the last member named name in
// the object that starts at b[i].
func member(b []byte, i int, name string) (value int, ok bool) {
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		end := stringEnd(b, i)
		match := keyIs(b[i:end], name)
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // past ':'
		if match {
			value, ok = i, true
		}
		i = skipSpace(b, skipValue(b, i))
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return value, ok
}

// keyIs reports whether the quoted key equals name once unescaped.
func keyIs(quoted []byte, name string) bool {
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	return unquote(quoted) == name
}

// unquote returns the value of the quoted JSON string s.
func unquote(s []byte) string {
	raw := s[1 : len(s)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var v string
	_ = json.Unmarshal(s, &v) // cannot fail: s is a valid JSON string
	return v
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; {
		q := j + bytes.IndexByte(b[j:], '"')
		// The quote is escaped when an odd number of backslashes precede it.
		k := q
		for k > j && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); {
			switch b[j] {
			case '"':
				j = stringEnd(b, j)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
			j++
		}
		return len(b)
	default: // number, true, false or null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' &&
			b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		return j
	}
}
