package batcher

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		msgID string
		want  string
		err   error
	}{
		{name: "get event", body: string(getEvent("4L3cwQae2TX", 1000)), msgID: "m", want: "4L3cwQae2TX"},
		{name: "whitespace", body: " \n{ \"data\" :\t{ \"type\":\"event\" , \"id\" : \"x1\" } }\r\n", want: "x1"},
		{name: "id before other members", body: `{"data":{"id":"a","attributes":{"id":"inner","data":{"id":"no"}}},"links":{}}`, want: "a"},
		{name: "nested id ignored", body: `{"data":{"attributes":{"id":"inner"}}}`, msgID: "m", want: "m"},
		{name: "top-level id ignored", body: `{"id":"top","data":{}}`, msgID: "m", want: "m"},
		{name: "escaped id", body: `{"data":{"id":"a\"b\\c\u00e9\ud83d\ude00"}}`, want: "a\"b\\cé😀"},
		{name: "escaped keys", body: `{"d\u0061ta":{"\u0069d":"k"}}`, want: "k"},
		{name: "key case matters", body: `{"Data":{"ID":"k"}}`, msgID: "m", want: "m"},
		{name: "last duplicate wins", body: `{"data":{"id":"1","id":"2"},"data":{"id":"3"}}`, want: "3"},
		{name: "last data without id", body: `{"data":{"id":"1"},"data":{}}`, msgID: "m", want: "m"},
		{name: "strings with quotes and brackets skipped", body: `{"x":"}\"]{","data":{"y":["\\",{"a":"\\\""}],"id":"ok"}}`, want: "ok"},
		{name: "numbers and literals skipped", body: `{"a":-1.5e3,"b":true,"c":null,"data":{"n":0,"f":false,"id":"ok"}}`, want: "ok"},
		{name: "id after nested objects", body: `{"data":{"attributes":{"a":{"b":[{"c":1}]}},"relationships":[],"id":"late"}}`, want: "late"},
		{name: "later object id replaces string id", body: `{"data":{"id":"1","id":{"x":"2"}}}`, msgID: "m", want: "m"},
		{name: "later array id replaces string id", body: `{"data":{"id":"1","id":[]}}`, msgID: "m", want: "m"},
		{name: "later data array drops id", body: `{"data":{"id":"1"},"data":["x"]}`, msgID: "m", want: "m"},
		{name: "data inside array ignored", body: `{"x":[{"data":{"id":"no"}}]}`, msgID: "m", want: "m"},
		{name: "numeric id", body: `{"data":{"id":42}}`, msgID: "m", want: "m"},
		{name: "null id", body: `{"data":{"id":null}}`, msgID: "m", want: "m"},
		{name: "empty id", body: `{"data":{"id":""}}`, msgID: "m", want: "m"},
		{name: "data not object", body: `{"data":["id"]}`, msgID: "m", want: "m"},
		{name: "no data", body: `{}`, msgID: "m", want: "m"},
		{name: "no id at all", body: `{"data":{}}`, err: ErrNoID},
		{name: "html and unicode", body: `{"data":{"id":"<é>&"}}`, want: "<é>&"},
		{name: "empty", body: ``, err: ErrNotJSON},
		{name: "truncated", body: `{"data":{"id":"x"}`, err: ErrNotJSON},
		{name: "trailing garbage", body: `{"data":{"id":"x"}} x`, err: ErrNotJSON},
		{name: "two values", body: `{} {}`, err: ErrNotJSON},
		{name: "raw control char", body: "{\"data\":{\"id\":\"a\nb\"}}", err: ErrNotJSON},
		{name: "invalid UTF-8", body: "{\"data\":{\"id\":\"\xff\"}}", err: ErrNotUTF8},
		{name: "array", body: `[{"data":{"id":"x"}}]`, msgID: "m", err: ErrNotObject},
		{name: "string", body: `"x"`, err: ErrNotObject},
		{name: "null", body: ` null `, err: ErrNotObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body), tt.msgID)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Parse(%q, %q) = %q, %v; want %q, %v", tt.body, tt.msgID, got, err, tt.want, tt.err)
			}
		})
	}
}

// parseReference is what Parse must return, computed with encoding/json.
func parseReference(body []byte, msgID string) (string, bool) {
	var top any
	if json.Unmarshal(body, &top) != nil {
		return "", false
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return "", false
	}
	if data, ok := obj["data"].(map[string]any); ok {
		if id, ok := data["id"].(string); ok && id != "" {
			return id, true
		}
	}
	return msgID, true
}
