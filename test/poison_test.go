package test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// depth is the deepest nesting of objects and arrays in a JSON text.
func depth(b []byte) int {
	d, peak, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			peak = max(peak, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return peak
}

// Issue 13, "One bad event must not sink the batch": an event that is
// valid JSON to webhookd but that the receiver refuses every time sank
// its whole batch — retried until --disable-after, then dropped with the
// 358 good events beside it.
//
// Each case publishes good events around one bad one; the receiver
// answers 500 to any request carrying it. The test proves every good event
// is delivered, the bad one is never delivered but dead-lettered with the
// case's reason code (webhookd.deadletter.<code>, Webhookd-Reason-Code),
// and the webhook stays enabled:
//   - too_deep: nested 2,000 deep; the receiver parses like Python's
//     json.loads (refuses nesting deeper than ~1,000); webhookd must refuse
//     it at intake (its documented limit is about 128).
//   - number_range: 1e400 overflows a double; the receiver parses like
//     Go's encoding/json, which refuses it; refused at intake too.
//   - rejected: an ordinary event the receiver refuses by its id; webhookd
//     must isolate it (e.g. split the failing batch down to one event) and
//     dead-letter it after its own retries while the rest is delivered.
func TestPoisonEventIsIsolated(t *testing.T) {
	t.Parallel()
	deep := `{"data":{"type":"event","id":"poison","attributes":{"x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}}}`
	cases := []struct {
		name, body, code string
		good             int
		refuse           func(body []byte, r *Request) bool
	}{
		{"too_deep", deep, "too_deep", 300, func(b []byte, _ *Request) bool { return depth(b) > 1000 }},
		{"number_range", `{"data":{"type":"event","id":"poison","attributes":{"n":1e400}}}`, "number_range", 100,
			func(b []byte, _ *Request) bool { var v any; return json.Unmarshal(b, &v) != nil }},
		{"rejected", string(eventBody("poison")), "rejected", 100, func(_ []byte, r *Request) bool {
			for _, ev := range r.Events {
				if ev.ExternalID == "poison" {
					return true
				}
			}
			return false
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.startWebhookd("--disable-after", "10m", "--backoff-base", "100ms", "--backoff-max", "1s")
			sink := NewSink(t, testSecret)
			sink.Respond = func(_ int64, r *Request) int {
				if tc.refuse(r.Body, r) {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}
			w := e.create("default", sink.URL, topicSMS)
			good := e.publish(topicSMS, "before", tc.good/2)
			e.publishRaw(topicSMS, []byte(tc.body), "poison")
			good = append(good, e.publish(topicSMS, "after", tc.good-tc.good/2)...)

			if !poll(40*time.Second, func() bool { return count(good, sink.Delivered()).lost == 0 }) {
				t.Errorf("%d of %d good events delivered within 40s, want all", count(good, sink.Delivered()).delivered, len(good))
			}
			dl, ok := e.waitDeadLetter(5*time.Second, "poison", "")
			switch {
			case !ok:
				t.Errorf("the bad event was not dead-lettered; dead letters: %v", e.deadLetters())
			case dl.Code != tc.code || dl.Subject != "webhookd.deadletter."+tc.code:
				t.Errorf("dead letter code %q on %q, want %q", dl.Code, dl.Subject, tc.code)
			}
			if n := sink.Delivered()["poison"]; n != 0 {
				t.Errorf("the bad event was delivered %d times", n)
			}
			if !e.get(w).Enabled {
				t.Error("the webhook was disabled")
			}
			t.Logf("%s: %d requests, %d good events delivered", tc.name, len(sink.Requests()), len(sink.Delivered()))
		})
	}
}
