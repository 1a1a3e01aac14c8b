package batcher

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendEnvelopeExact(t *testing.T) {
	payload := `{"data":{"type":"event","id":"4L3cwQae2TX","attributes":{"x":"<>&"}}}`
	events := []Event{
		{ExternalID: "4L3cwQae2TX", Topic: "event:klaviyo.sent_sms", Payload: []byte(payload)},
		{ExternalID: `q"\`, Topic: "t", Payload: nil},
	}
	got := string(AppendEnvelope([]byte("prefix:"), events, testMeta))
	want := `prefix:{"data":[{"external_id":"4L3cwQae2TX","topic":"event:klaviyo.sent_sms","payload":` + payload + `},` +
		`{"external_id":"q\"\\","topic":"t","payload":null}],` +
		`"meta":{"klaviyo_account_id":"abc123","klaviyo_webhook_id":"a8b890458b4bbfaa26d961471b83c101d6de23bd826e7e5173a15310985ec3cb",` +
		`"timestamp":"2024-01-04T13:05:25.891446+00:00","version":"2024-07-15"}}`
	if got != want {
		t.Errorf("AppendEnvelope() =\n%s\nwant\n%s", got, want)
	}
}

func TestAppendEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		meta   Meta
	}{
		{name: "no events", meta: testMeta},
		{name: "zero meta", events: []Event{{ExternalID: "1", Topic: "t", Payload: []byte(`{}`)}}},
		{name: "html and unicode payload", meta: testMeta, events: []Event{
			{ExternalID: "1", Topic: "event:klaviyo.sent_sms", Payload: []byte(`{"data":{"id":"1","s":"<script>&amp;</script> é € 😀 \u2028 \u00e9"}}`)},
		}},
		{name: "payload whitespace kept", meta: testMeta, events: []Event{
			{ExternalID: "1", Topic: "t", Payload: []byte("{\n  \"data\" : { \"id\" : \"1\" }\n}")},
		}},
		{name: "escaped strings", meta: Meta{AccountID: "a\"b", WebhookID: `w\h`, Version: "v\n\t\x00\x1f", Timestamp: testMeta.Timestamp}, events: []Event{
			{ExternalID: "quote\" backslash\\ slash/ ctl\x01\x7f", Topic: "tab\tcr\rff\fbs\b", Payload: []byte(`[1,2]`)},
			{ExternalID: "é€😀 \u2028\u2029 <>&", Topic: "event:klaviyo.sent_sms", Payload: []byte(`"s"`)},
		}},
		{name: "invalid UTF-8", meta: testMeta, events: []Event{
			{ExternalID: "\xff\xfe", Topic: "a\xe2\x82b", Payload: []byte(`{}`)},
			{ExternalID: "\xed\xa0\x80", Topic: "\xc0\xaf", Payload: []byte(`{}`)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := AppendEnvelope(nil, tt.events, tt.meta)
			got := decode(t, body)
			want := envelope{
				Data: []item{},
				Meta: map[string]string{
					"klaviyo_account_id": jsonRoundTrip(tt.meta.AccountID),
					"klaviyo_webhook_id": jsonRoundTrip(tt.meta.WebhookID),
					"timestamp":          tt.meta.Timestamp.UTC().Format("2006-01-02T15:04:05.000000") + "+00:00",
					"version":            jsonRoundTrip(tt.meta.Version),
				},
			}
			for _, e := range tt.events {
				want.Data = append(want.Data, item{jsonRoundTrip(e.ExternalID), jsonRoundTrip(e.Topic), e.Payload})
				if !bytes.Contains(body, e.Payload) {
					t.Errorf("body does not hold payload %q unchanged", e.Payload)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decoded AppendEnvelope() mismatch (-want +got):\n%s", diff)
			}
			if n := Size(tt.events, tt.meta); n != len(body) {
				t.Errorf("Size() = %d, want len(AppendEnvelope()) = %d", n, len(body))
			}
		})
	}
}

// TestAppendStringMatchesEncodingJSON checks that appendString escapes
// exactly as encoding/json does apart from HTML and U+2028/9, which
// encoding/json escapes only for embedding in HTML.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	in := []string{"", "plain", "\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x20\x7f", `"\/`, "\xff", "\xe2\x82", "é\xffé", "\U0010ffff", "\xf4\x90\x80\x80"}
	for range 1000 {
		in = append(in, randString(r))
	}
	for _, s := range in {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		w := bytes.TrimSuffix(want.Bytes(), []byte("\n"))
		w = bytes.ReplaceAll(w, []byte(`\u2028`), []byte("\u2028"))
		w = bytes.ReplaceAll(w, []byte(`\u2029`), []byte("\u2029"))
		if got := appendString(nil, s); !bytes.Equal(got, w) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, w)
		}
		if got, want := stringLen(s), len(w); got != want {
			t.Errorf("stringLen(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{testMeta.Timestamp, `"2024-01-04T13:05:25.891446+00:00"`},
		{time.Date(2024, 1, 4, 18, 5, 25, 891446999, time.FixedZone("X", 5*3600)), `"2024-01-04T13:05:25.891446+00:00"`},
		{time.Date(2023, 8, 10, 7, 25, 23, 0, time.UTC), `"2023-08-10T07:25:23.000000+00:00"`},
		{time.Time{}, `"0001-01-01T00:00:00.000000+00:00"`},
	}
	for _, tt := range tests {
		if got := string(appendTimestamp(nil, tt.in)); got != tt.want {
			t.Errorf("appendTimestamp(%v) = %s, want %s", tt.in, got, tt.want)
		}
		if got := timestampLen(tt.in); got != len(tt.want) {
			t.Errorf("timestampLen(%v) = %d, want %d", tt.in, got, len(tt.want))
		}
	}
}

func TestAppendEnvelopeNoAllocs(t *testing.T) {
	events := randEvents(rand.New(rand.NewPCG(3, 4)), 100)
	buf := AppendEnvelope(nil, events, testMeta)
	allocs := testing.AllocsPerRun(20, func() { buf = AppendEnvelope(buf[:0], events, testMeta) })
	if allocs != 0 {
		t.Errorf("AppendEnvelope into a reused buffer allocates %v times, want 0", allocs)
	}
}
