package batcher

import (
	"encoding/json"
	"errors"
	"strings"
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
		{name: "deepest accepted", body: `{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `,"data":{"id":"d"}}`, want: "d"},
		{name: "too deep", body: `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `,"data":{"id":"d"}}`, err: ErrTooDeep},
		{name: "too deep in data", body: `{"data":{"id":"d","x":` + strings.Repeat(`{"y":`, MaxDepth-1) + `1` + strings.Repeat("}", MaxDepth-1) + `}}`, err: ErrTooDeep},
		{name: "poison event of issue 13", body: `{"data":{"id":"p","x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}}`, err: ErrTooDeep},
		{name: "too deep and truncated", body: strings.Repeat("[", 2000), err: ErrTooDeep},
		{name: "too deep array", body: strings.Repeat("[", 100) + strings.Repeat("]", 100), err: ErrTooDeep},
		{name: "number overflows", body: `{"data":{"id":"x","v":1e400}}`, err: ErrNumberRange},
		{name: "negative number overflows", body: `{"data":{"id":"x","v":[-1e999]}}`, err: ErrNumberRange},
		{name: "400-digit integer", body: `{"data":{"id":"x"},"v":` + strings.Repeat("9", 400) + `}`, err: ErrNumberRange},
		{name: "just below the largest double", body: `{"data":{"id":"x","v":1.7976931348623157e308}}`, want: "x"},
		{name: "just above the largest double", body: `{"data":{"id":"x","v":1.7976931348623159e308}}`, err: ErrNumberRange},
		{name: "underflow reads as 0", body: `{"data":{"id":"x","v":1e-400}}`, want: "x"},
		{name: "number in data.id position", body: `{"data":{"id":1e400}}`, msgID: "m", err: ErrNumberRange},
		{name: "first fault wins", body: "{\"a\":\"\xff\",\"b\":1e400}", err: ErrNotUTF8},
		{name: "first fault wins other way", body: "{\"a\":1e400,\"b\":\"\xff\"}", err: ErrNumberRange},
		{name: "invalid UTF-8 in a key", body: "{\"\xff\":1,\"data\":{\"id\":\"x\"}}", err: ErrNotUTF8},
		{name: "array with a bad number", body: `[1e400]`, err: ErrNumberRange},
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
