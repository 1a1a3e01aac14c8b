package sink

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/webhookd/webhookd/batcher/jsonscan"
)

func TestScanDelivery(t *testing.T) {
	keyOf := func(id []byte) uint64 { return uint64(len(id)) } // checks the unescaped id reaches keyOf
	for _, tt := range []struct {
		name      string
		body      string
		keys      []uint64
		published []int64
		topics    []topicCount
	}{
		{
			name: "webhookd's layout",
			body: `{"data":[{"external_id":"abc","topic":"t","payload":{"data":{"attributes":{"event_properties":{"published_ns":1767225600123456789}}}}},` +
				`{"external_id":"de","topic":"t","payload":{"data":{"attributes":{"event_properties":{"published_ns":9223372036854775808}}}}}],` +
				`"meta":{"klaviyo_account_id":"x","klaviyo_webhook_id":"W","timestamp":"t","version":"v"}}`,
			keys: []uint64{3, 2}, published: []int64{1767225600123456789}, topics: []topicCount{{"t", 2}},
		},
		{
			name: "any order, white space, unknown members, escapes",
			body: " {\"meta\" : {\"klaviyo_webhook_id\":\"W\", \"x\":[1,-2.5e+3,true,null]},\n\"extra\":{},\"data\":[\n" +
				`{"payload":null,"topic":"a\u0062","external_id":"\u00e9\"x"},` +
				`{"topic":"ab","external_id":"","payload":[{"data":{}}],"more":"\\"}` + "]}\t",
			keys: []uint64{4, 0}, topics: []topicCount{{"ab", 2}},
		},
		{
			name: "published_ns only at its path",
			body: `{"data":[{"external_id":"a","topic":"t","payload":{"published_ns":1,"data":{"attributes":{"published_ns":2,` +
				`"event_properties":{"x":{"published_ns":3},"published_ns":"4"}}}}},` +
				`{"external_id":"b","topic":"u","payload":{"data":{"attributes":{"event_properties":{"published_ns":1.5}}}}},` +
				`{"external_id":"c","topic":"t","payload":{"data":{"attributes":{"event_properties":{"published_ns":7}}}}}],` +
				`"meta":{"klaviyo_webhook_id":"W"}}`,
			keys: []uint64{1, 1, 1}, published: []int64{7}, topics: []topicCount{{"t", 2}, {"u", 1}},
		},
		{name: "no events", body: `{"data":[],"meta":{"klaviyo_webhook_id":"W"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d deliveryScan
			if err := scanDelivery([]byte(tt.body), &d, keyOf); err != nil {
				t.Fatalf("scanDelivery() = %v", err)
			}
			if string(d.webhookID) != "W" {
				t.Errorf("webhookID = %q, want W", d.webhookID)
			}
			got := deliveryScan{keys: d.keys, published: d.published, topics: d.topics}
			want := deliveryScan{keys: tt.keys, published: tt.published, topics: tt.topics}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(deliveryScan{}, topicCount{}), cmpEmpty); diff != "" {
				t.Errorf("scan mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.FilterValues(func(a, b any) bool {
	return lenOf(a) == 0 && lenOf(b) == 0
}, cmp.Ignore())

func lenOf(v any) int {
	switch v := v.(type) {
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []topicCount:
		return len(v)
	}
	return -1
}

func TestScanDeliveryMalformed(t *testing.T) {
	const ok = `{"data":[{"external_id":"a","topic":"t","payload":{}}],"meta":{"klaviyo_webhook_id":"W"}}`
	if err := scanDelivery([]byte(ok), &deliveryScan{}, func([]byte) uint64 { return 0 }); err != nil {
		t.Fatalf("scanDelivery(%s) = %v", ok, err)
	}
	for _, body := range []string{
		``, `[]`, `{`, `{}`, `null`, ok + `x`, ok + `{}`,
		`{"data":[],"meta":{}}`,                         // no webhook id
		`{"data":[],"meta":{"klaviyo_webhook_id":1}}`,   // not a string
		`{"meta":{"klaviyo_webhook_id":"W"}}`,           // no data
		`{"data":{},"meta":{"klaviyo_webhook_id":"W"}}`, // data not an array
		`{"data":[],"data":[],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"topic":"t"}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a"}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":1,"topic":"t"}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a","topic":"t",}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a","topic":"t","payload":{"a":tru}}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a","topic":"t","payload":01}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a","topic":"t","payload":"\x"}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a","topic":"t","payload":"` + "\n" + `"}],"meta":{"klaviyo_webhook_id":"W"}}`,
		`{"data":[{"external_id":"a","topic":"t","payload":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}],"meta":{"klaviyo_webhook_id":"W"}}`,
	} {
		if err := scanDelivery([]byte(body), &deliveryScan{}, func([]byte) uint64 { return 0 }); err == nil {
			t.Errorf("scanDelivery(%.80q) = nil, want an error", body)
		}
	}
}

// FuzzScanDelivery checks the scanner against encoding/json: as a
// validator it agrees with json.Valid except where jsonscan is stricter
// on purpose (invalid UTF-8, numbers beyond a double, nesting past
// jsonscan.MaxDepth), and whatever it accepts as an envelope decodes to
// the same events and webhook id.
func FuzzScanDelivery(f *testing.F) {
	f.Add([]byte(`{"data":[{"external_id":"a\"b","topic":"t","payload":{"data":{"attributes":{"event_properties":{"published_ns":12}}}}}],"meta":{"klaviyo_webhook_id":"W"}}`))
	f.Add([]byte(`[1, -0.5e3, "\u00e9\t", {"a": [true, false, null]}]`))
	f.Add(envelope(testWebhook, testEvents(2)))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := jsonScanner{b: body}
		s.ws()
		err := s.value(-1)
		s.ws()
		stricter := errors.Is(err, jsonscan.ErrUTF8) || errors.Is(err, jsonscan.ErrRange)
		if valid := err == nil && s.i == len(body); valid != json.Valid(body) && s.depth <= maxJSONDepth && !stricter {
			t.Fatalf("scanner says valid = %v (%v), json.Valid disagrees", valid, err)
		}

		var d deliveryScan
		var ids []string
		if scanDelivery(body, &d, func(id []byte) uint64 { ids = append(ids, valid(id)); return 0 }) != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatal("scanDelivery accepted invalid JSON")
		}
		// Maps, not structs: encoding/json matches struct fields case-insensitively.
		var top map[string]json.RawMessage
		var data []map[string]any
		var meta map[string]any
		if err := errors.Join(json.Unmarshal(body, &top), json.Unmarshal(top["data"], &data), json.Unmarshal(top["meta"], &meta)); err != nil {
			t.Fatalf("scanDelivery accepted what encoding/json cannot decode: %v", err)
		}
		var want []string
		for _, e := range data {
			id, _ := e["external_id"].(string)
			want = append(want, id)
		}
		if !slices.Equal(ids, want) || meta["klaviyo_webhook_id"] != valid(d.webhookID) {
			t.Fatalf("scan = %q, %q; encoding/json = %q, %q", ids, d.webhookID, want, meta["klaviyo_webhook_id"])
		}
	})
}

// valid replaces each byte of b that is not UTF-8 with U+FFFD, as
// encoding/json does (the sink keeps such bytes: they are only hashed).
func valid(b []byte) string { return string([]rune(string(b))) }
