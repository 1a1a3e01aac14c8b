package eventgen

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

// getEvent is the part of Klaviyo's Get Event shape the sink and
// webhookd read.
type getEvent struct {
	Data struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Attributes struct {
			Timestamp       int64 `json:"timestamp"`
			Datetime        string
			UUID            string `json:"uuid"`
			EventProperties struct {
				PublishedNS int64  `json:"published_ns"`
				EventID     string `json:"$event_id"`
			} `json:"event_properties"`
		} `json:"attributes"`
		Relationships map[string]struct {
			Data struct{ Type, ID string }
		} `json:"relationships"`
	} `json:"data"`
}

func TestAppend(t *testing.T) {
	now := time.Unix(1_790_000_000, 123)
	minSize := len(New(0).Append(nil, now).JSON)
	for _, size := range []int{0, 1024, 4096, 100_000} {
		g := New(size)
		seen := map[string]bool{}
		for range 100 {
			ev := g.Append([]byte("prefix:"), now)
			if string(ev.JSON[:7]) != "prefix:" {
				t.Fatalf("Append did not append to b: %.20q", ev.JSON)
			}
			body := ev.JSON[7:]
			var got getEvent
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("New(%d).Append: not JSON: %v\n%s", size, err, body)
			}
			d := got.Data
			if d.Type != "event" || d.ID != ev.ID || len(ev.ID) != idLen || d.Attributes.EventProperties.EventID != ev.ID {
				t.Errorf("event ids: type %q id %q $event_id %q, want event and %q (12 characters)", d.Type, d.ID, d.Attributes.EventProperties.EventID, ev.ID)
			}
			if u, err := uuid.Parse(ev.UUID); err != nil || u.Version() != 4 || d.Attributes.UUID != ev.UUID {
				t.Errorf("uuid %q (in the event %q): %v, want a version 4 UUID", ev.UUID, d.Attributes.UUID, err)
			}
			if d.Attributes.EventProperties.PublishedNS != now.UnixNano() || d.Attributes.Timestamp != now.Unix() {
				t.Errorf("published_ns %d timestamp %d, want %d and %d", d.Attributes.EventProperties.PublishedNS, d.Attributes.Timestamp, now.UnixNano(), now.Unix())
			}
			if d.Relationships["profile"].Data.Type != "profile" || d.Relationships["metric"].Data.Type != "metric" {
				t.Errorf("relationships = %+v, want profile and metric", d.Relationships)
			}
			if size > minSize && len(body) != size {
				t.Errorf("New(%d): event of %d bytes, want %d", size, len(body), size)
			}
			if seen[ev.ID] {
				t.Fatalf("id %s generated twice", ev.ID)
			}
			seen[ev.ID] = true
		}
	}
}

// The counter wraps within its 8 characters instead of overflowing into
// the prefix.
func TestIDWraps(t *testing.T) {
	g := New(0)
	g.counter = counterSpace - 1
	last, first := g.nextID(), g.nextID()
	if last[:prefixLen] != g.prefix || first[:prefixLen] != g.prefix {
		t.Errorf("ids %s, %s: want both to start with the prefix %s", last, first, g.prefix)
	}
	if last[prefixLen:] != "zzzzzzzz" || first[prefixLen:] != "00000000" {
		t.Errorf("ids around the wrap = %s, %s; want …zzzzzzzz, …00000000", last, first)
	}
}

func BenchmarkAppend(b *testing.B) {
	g := New(1024)
	buf := make([]byte, 0, 1280)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		g.Append(buf[:0], now)
	}
}
