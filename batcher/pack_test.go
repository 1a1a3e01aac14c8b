package batcher

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPack(t *testing.T) {
	ev := func(payload int) Event { return Event{ExternalID: "id", Topic: "t", Payload: make([]byte, payload)} }
	over := Overhead(testMeta)
	one := EventSize(ev(10)) // every event below is this size unless stated
	big := ev(1000)
	tests := []struct {
		name     string
		events   []Event
		cfg      Config
		want     [][2]int // part start and length
		tooLarge []int
	}{
		{name: "none"},
		{name: "defaults", events: make([]Event, 2500), want: [][2]int{{0, 1000}, {1000, 1000}, {2000, 500}}},
		{name: "event cap", events: []Event{ev(10), ev(10), ev(10)}, cfg: Config{MaxEvents: 2}, want: [][2]int{{0, 2}, {2, 1}}},
		{name: "byte cap exact", events: []Event{ev(10), ev(10), ev(10)}, cfg: Config{MaxBytes: over + 2*one}, want: [][2]int{{0, 2}, {2, 1}}},
		{name: "byte cap one short", events: []Event{ev(10), ev(10), ev(10)}, cfg: Config{MaxBytes: over + 2*one - 1}, want: [][2]int{{0, 1}, {1, 1}, {2, 1}}},
		{name: "one event exactly fills a body", events: []Event{ev(10)}, cfg: Config{MaxBytes: over + one}, want: [][2]int{{0, 1}}},
		{name: "one byte too many", events: []Event{ev(10)}, cfg: Config{MaxBytes: over + one - 1}, tooLarge: []int{0}},
		{name: "too large in the middle ends the part", events: []Event{ev(10), ev(10), big, ev(10), ev(10)}, cfg: Config{MaxBytes: 1000},
			want: [][2]int{{0, 2}, {3, 2}}, tooLarge: []int{2}},
		{name: "too large first and last", events: []Event{big, ev(10), big}, cfg: Config{MaxBytes: 1000}, want: [][2]int{{1, 1}}, tooLarge: []int{0, 2}},
		{name: "too large in a row", events: []Event{big, big, ev(10)}, cfg: Config{MaxBytes: 1000}, want: [][2]int{{2, 1}}, tooLarge: []int{0, 1}},
		{name: "all too large", events: []Event{big, big}, cfg: Config{MaxBytes: 1000}, tooLarge: []int{0, 1}},
		{name: "both caps", events: make([]Event, 7), cfg: Config{MaxEvents: 3, MaxBytes: over + 2*EventSize(Event{})},
			want: [][2]int{{0, 2}, {2, 2}, {4, 2}, {6, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, tooLarge := Pack(tt.events, tt.cfg, testMeta)
			var got [][2]int
			for _, p := range parts {
				got = append(got, [2]int{p.Start, len(p.Events)})
				if n := len(AppendEnvelope(nil, p.Events, testMeta)); p.Size != n {
					t.Errorf("part at %d: Size = %d, want len(AppendEnvelope()) = %d", p.Start, p.Size, n)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Pack() parts (start, length) mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.tooLarge, tooLarge); diff != "" {
				t.Errorf("Pack() tooLarge mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// checkPack checks what Pack promises of parts and tooLarge for events:
// each event in exactly one part (at its index, in order) or in tooLarge,
// both caps kept by the body AppendEnvelope writes under sendMeta (meta
// with a later timestamp), as few parts as possible, and the too-large
// events exactly those that fit in no body.
func checkPack(tb testing.TB, events []Event, cfg Config, meta, sendMeta Meta, parts []Part, tooLarge []int) {
	tb.Helper()
	maxEvents, maxBytes := cfg.maxEvents(), cfg.maxBytes()
	fits := func(e Event) bool { return Size([]Event{e}, meta) <= maxBytes }
	next, large := 0, tooLarge // the next event to find, and the too-large ones left
	for k, p := range parts {
		for len(large) > 0 && large[0] == next {
			next, large = next+1, large[1:]
		}
		if p.Start != next || len(p.Events) == 0 || len(p.Events) > maxEvents {
			tb.Fatalf("part %d starts at %d with %d events, want start %d and 1..%d events", k, p.Start, len(p.Events), next, maxEvents)
		}
		if &p.Events[0] != &events[p.Start] || cap(p.Events) != len(p.Events) {
			tb.Fatalf("part %d is not events[%d:%d] with its capacity clipped", k, p.Start, p.Start+len(p.Events))
		}
		body := AppendEnvelope(nil, p.Events, sendMeta)
		if len(body) > maxBytes || len(body) != p.Size {
			tb.Fatalf("part %d: body of %d bytes, Size %d, cap %d", k, len(body), p.Size, maxBytes)
		}
		next += len(p.Events)
		// As few bodies as possible: the next event, unless too large,
		// would break a cap.
		if next < len(events) && (len(large) == 0 || large[0] != next) && len(p.Events) < maxEvents {
			if n := Size(append(p.Events, events[next]), meta); n <= maxBytes {
				tb.Fatalf("part %d stopped early: with the next event it is %d <= %d bytes", k, n, maxBytes)
			}
		}
	}
	for len(large) > 0 && large[0] == next {
		next, large = next+1, large[1:]
	}
	if next != len(events) || len(large) != 0 {
		tb.Fatalf("parts and tooLarge %v cover events up to %d of %d", tooLarge, next, len(events))
	}
	for i, e := range events {
		isLarge := false
		for _, j := range tooLarge {
			isLarge = isLarge || i == j
		}
		if isLarge == fits(e) {
			tb.Fatalf("event %d (%d bytes alone): in tooLarge = %t, want %t", i, Size([]Event{e}, meta), isLarge, !fits(e))
		}
	}
}

func TestPackRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 300 {
		events := randEvents(r, r.IntN(60))
		cfg := Config{MaxEvents: 1 + r.IntN(10), MaxBytes: Overhead(testMeta) + 300 + r.IntN(5000)}
		parts, tooLarge := Pack(events, cfg, testMeta)
		later := testMeta
		later.Timestamp = later.Timestamp.Add(time.Duration(r.Int64N(1 << 62)))
		checkPack(t, events, cfg, testMeta, later, parts, tooLarge)
	}
}

// FuzzPack checks Pack's promises (see checkPack) for any event sizes,
// ids, caps and meta, with the bodies written at another time than they
// were packed. Seeds are in testdata/fuzz/FuzzPack.
func FuzzPack(f *testing.F) {
	f.Add([]byte{10, 200, 3, 255, 0, 40}, "4L3cwQae2TX", "abc123", uint8(3), uint16(700), uint16(2024), uint16(9999))
	f.Add([]byte{255, 255, 1}, "q\"\\\n\x00é\xff", "", uint8(0), uint16(0), uint16(0), uint16(1))
	f.Fuzz(func(t *testing.T, sizes []byte, id, account string, maxEvents uint8, maxBytes uint16, year, sendYear uint16) {
		if len(sizes) > 200 {
			sizes = sizes[:200]
		}
		events := make([]Event, len(sizes))
		for i, s := range sizes {
			events[i] = Event{ExternalID: fmt.Sprintf("%s%d", id[:int(s)%(len(id)+1)], i), Topic: "event:klaviyo.sent_sms"}
			if s%7 != 0 { // else nil: written as null
				events[i].Payload = fmt.Appendf(nil, `[%d,"%0*d"]`, s, int(s)*4, 0)
			}
		}
		at := func(y uint16) time.Time { return time.Date(int(y%10000), 12, 31, 23, 59, 59, 999999999, time.UTC) }
		meta := Meta{AccountID: account, WebhookID: id, Version: Version, Timestamp: at(year)}
		sendMeta := meta
		sendMeta.Timestamp = at(sendYear)
		cfg := Config{MaxEvents: int(maxEvents) % 20, MaxBytes: int(maxBytes)}
		parts, tooLarge := Pack(events, cfg, meta)
		checkPack(t, events, cfg, meta, sendMeta, parts, tooLarge)
	})
}
