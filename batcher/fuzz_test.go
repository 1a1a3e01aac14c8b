package batcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/webhookd/webhookd/batcher/internal/jsonref"
)

// FuzzAppendEnvelope checks that for any ids, topics, meta strings and
// valid JSON payloads, the envelope is valid JSON that decodes back to the
// same strings (invalid UTF-8 read as U+FFFD) and the same payload bytes,
// and that Size predicts its length. Seeds are in
// testdata/fuzz/FuzzAppendEnvelope.
func FuzzAppendEnvelope(f *testing.F) {
	f.Add("4L3cwQae2TX", "event:klaviyo.sent_sms", "abc123", "wh", "2024-07-15", []byte(`{"data":{"id":"4L3cwQae2TX"}}`), int64(1704373525891446000))
	f.Add("q\"\\\n\x00", "é\xff\u2028", "", "", "", []byte(` "<>&" `), int64(-1))
	f.Fuzz(func(t *testing.T, id, topic, account, webhook, version string, payload []byte, nsec int64) {
		if !json.Valid(payload) {
			// Payloads are validated before they are batched; turn an
			// invalid one into a valid JSON string so the case is not lost.
			payload, _ = json.Marshal(string(payload))
		}
		meta := Meta{AccountID: account, WebhookID: webhook, Version: version, Timestamp: time.Unix(0, nsec)}
		events := []Event{{ExternalID: id, Topic: topic, Payload: payload}, {ExternalID: topic, Topic: id, Payload: []byte(`{}`)}}
		body := AppendEnvelope(nil, events, meta)
		if n := Size(events, meta); n != len(body) {
			t.Fatalf("Size() = %d, want len(AppendEnvelope()) = %d", n, len(body))
		}
		if !utf8.Valid(body) && utf8.Valid(payload) {
			t.Fatalf("body is not UTF-8 although the payload is: %q", body)
		}
		env := decode(t, body)
		if len(env.Data) != 2 {
			t.Fatalf("decoded %d events, want 2", len(env.Data))
		}
		got := env.Data[0]
		if got.ExternalID != jsonRoundTrip(id) || got.Topic != jsonRoundTrip(topic) || env.Data[1].ExternalID != jsonRoundTrip(topic) {
			t.Errorf("decoded id, topic = %q, %q; want %q, %q", got.ExternalID, got.Topic, jsonRoundTrip(id), jsonRoundTrip(topic))
		}
		if want := bytes.Trim(payload, " \t\r\n"); !bytes.Equal(got.Payload, want) {
			t.Errorf("decoded payload = %q, want %q unchanged", got.Payload, want)
		}
		for k, want := range map[string]string{"klaviyo_account_id": account, "klaviyo_webhook_id": webhook, "version": version} {
			if env.Meta[k] != jsonRoundTrip(want) {
				t.Errorf("decoded meta.%s = %q, want %q", k, env.Meta[k], jsonRoundTrip(want))
			}
		}
		if ts, err := time.Parse(time.RFC3339Nano, env.Meta["timestamp"]); err != nil || !ts.Equal(meta.Timestamp.Truncate(time.Microsecond)) {
			t.Errorf("decoded meta.timestamp = %q (%v), want %v", env.Meta["timestamp"], err, meta.Timestamp)
		}
	})
}

// FuzzParse checks that Parse never panics, refuses a body for the
// first fault jsonref finds in it with encoding/json (as nested in an
// envelope), returns the data.id encoding/json finds otherwise, and that
// the envelope of an event it accepts is itself accepted whole. Seeds are
// in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"data":{"type":"event","id":"4L3cwQae2TX"}}`), "m")
	f.Add([]byte(`{"data":{"id":"a\"b"},"data":{"id":7}}`), "")
	f.Add([]byte(`[]`), "m")
	f.Add([]byte(`{"data":{"id":"x","n":[1e400]}}`), "m")
	f.Add([]byte(`{"a":`+strings.Repeat("[", MaxDepth)+strings.Repeat("]", MaxDepth)+`}`), "m")
	f.Fuzz(func(t *testing.T, body []byte, msgID string) {
		got, err := Parse(body, msgID)
		if fault := jsonref.Fault(body, envelopeDepth); fault != nil {
			if want := fromScan(fault); !errors.Is(err, want) {
				t.Fatalf("Parse(%q) = %q, %v; want %v", body, got, err, want)
			}
			return
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("jsonref.Fault(%q) = nil for a body json.Valid or utf8.Valid refuses", body)
		}
		want, ok := parseReference(body, msgID)
		switch {
		case !ok:
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("Parse(%q) = %q, %v; want ErrNotObject", body, got, err)
			}
		case want == "":
			if !errors.Is(err, ErrNoID) {
				t.Fatalf("Parse(%q, %q) = %q, %v; want ErrNoID", body, msgID, got, err)
			}
		case err != nil || got != want:
			t.Fatalf("Parse(%q, %q) = %q, %v; want %q", body, msgID, got, err, want)
		}
		if err == nil {
			env := AppendEnvelope(nil, []Event{{ExternalID: got, Topic: "t", Payload: body}}, testMeta)
			if fault := jsonref.Fault(env, 0); fault != nil {
				t.Fatalf("envelope of accepted %q: %v", body, fault)
			}
		}
	})
}
