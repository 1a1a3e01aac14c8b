package batcher

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrNotJSON, "not_json"},
		{ErrNotUTF8, "not_utf8"},
		{ErrTooDeep, "too_deep"},
		{ErrNumberRange, "number_range"},
		{ErrNotObject, "not_object"},
		{ErrNoID, "no_id"},
		{ErrTooLarge, "too_large"},
		{fmt.Errorf("event 3: %w", ErrTooLarge), "too_large"},
		{errors.New("other"), "invalid"},
	}
	for _, tt := range tests {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	// Every error Parse returns has its own code, fit for a NATS subject.
	seen := map[string]bool{}
	for _, body := range []string{`x`, "{\"\xff\":1}", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), `{"a":1e400}`, `[]`, `{}`} {
		_, err := Parse([]byte(body), "")
		code := Reason(err)
		if code == "invalid" || code == "" || seen[code] || strings.ContainsAny(code, ". *>\t\r\n") {
			t.Errorf("Reason(Parse(%.20q) = %v) = %q, want a new code fit for a subject token", body, err, code)
		}
		seen[code] = true
	}
}
