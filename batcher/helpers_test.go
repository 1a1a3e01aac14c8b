package batcher

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// envelope is the decoded shape of a body, for comparisons with go-cmp.
type envelope struct {
	Data []item            `json:"data"`
	Meta map[string]string `json:"meta"`
}

type item struct {
	ExternalID string          `json:"external_id"`
	Topic      string          `json:"topic"`
	Payload    json.RawMessage `json:"payload"`
}

// decode decodes body strictly as an envelope.
func decode(tb testing.TB, body []byte) envelope {
	tb.Helper()
	if !json.Valid(body) {
		tb.Fatalf("body is not valid JSON: %q", body)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		tb.Fatalf("json.Unmarshal(body) = %v", err)
	}
	return env
}

// jsonRoundTrip returns what a JSON receiver reads back for s: encoding/json
// replaces each invalid UTF-8 byte with U+FFFD, as []rune conversion does.
func jsonRoundTrip(s string) string { return string([]rune(s)) }

var testMeta = Meta{
	AccountID: "abc123",
	WebhookID: "a8b890458b4bbfaa26d961471b83c101d6de23bd826e7e5173a15310985ec3cb",
	Timestamp: time.Date(2024, 1, 4, 13, 5, 25, 891446000, time.UTC),
	Version:   "2024-07-15",
}

// getEvent returns a realistic Get Event payload of about size bytes.
func getEvent(id string, size int) []byte {
	const tmpl = `{"data":{"type":"event","id":%q,"attributes":{"timestamp":1700503941,` +
		`"event_properties":{"$event_id":"%s","$value":9.99,"Subject":"Ünïcode <b>&amp; 20%% off</b>","$message":"%s"},` +
		`"datetime":"2023-11-20 18:12:21+00:00","uuid":"58edf080-87d0-11ee-8001-895ec29a6280"},` +
		`"relationships":{"profile":{"data":{"type":"profile","id":"01GDDKASAP8TKDDA2GRZDSVP4H"}},` +
		`"metric":{"data":{"type":"metric","id":"XnYkB2"}}},"links":{"self":"https://a.klaviyo.com/api/events/%s/"}}}`
	p := fmt.Sprintf(tmpl, id, id, "", id)
	if pad := size - len(p); pad > 0 {
		p = fmt.Sprintf(tmpl, id, id, strings.Repeat("m", pad), id)
	}
	return []byte(p)
}

// randString returns a short string mixing ASCII, escapes, multi-byte
// UTF-8 and invalid bytes.
func randString(r *rand.Rand) string {
	alphabet := []string{"a", "Z", "0", ":", ".", `"`, `\`, "\n", "\x00", "\x1f", "\x7f", "<", "&",
		"é", "€", "😀", "\u2028", "\xff", "\xe2\x82", "\xed\xa0\x80"}
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// randEvents returns n events with random ids and topics and payloads of
// random size.
func randEvents(r *rand.Rand, n int) []Event {
	events := make([]Event, n)
	for i := range events {
		id := randString(r)
		events[i] = Event{ExternalID: id, Topic: randString(r), Payload: getEvent(fmt.Sprint(i), r.IntN(2000))}
		if r.IntN(20) == 0 {
			events[i].Payload = nil
		}
	}
	return events
}
