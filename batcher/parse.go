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
// Parse runs on every event, so it validates and finds data.id in one
// pass (scan), without decoding anything but the id.
func Parse(body []byte, msgID string) (string, error) {
	idAt, idEnd, ok := scan(body)
	if !ok {
		return "", ErrNotJSON
	}
	if !utf8.Valid(body) {
		return "", ErrNotUTF8
	}
	if body[skipSpace(body, 0)] != '{' {
		return "", ErrNotObject
	}
	if idAt >= 0 {
		if id := unquote(body[idAt:idEnd]); id != "" {
			return id, nil
		}
	}
	if msgID != "" {
		return msgID, nil
	}
	return "", ErrNoID
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
