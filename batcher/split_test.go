package batcher

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSizeExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		events := randEvents(r, r.IntN(20))
		meta := Meta{AccountID: randString(r), WebhookID: randString(r), Version: randString(r),
			Timestamp: testMeta.Timestamp.Add(time.Duration(r.Int64N(1e18)))}
		body := AppendEnvelope(nil, events, meta)
		if got := Size(events, meta); got != len(body) {
			t.Fatalf("Size(%d events) = %d, want %d", len(events), got, len(body))
		}
		if len(events) == 0 {
			continue
		}
		sum := Overhead(meta)
		for _, e := range events {
			sum += EventSize(e)
		}
		if sum != len(body) {
			t.Fatalf("Overhead + Σ EventSize = %d, want %d", sum, len(body))
		}
	}
}

func TestSplit(t *testing.T) {
	ev := func(payload int) Event { return Event{ExternalID: "id", Topic: "t", Payload: make([]byte, payload)} }
	over := Overhead(testMeta)
	one := EventSize(ev(10)) // every event below is this size unless stated
	tests := []struct {
		name   string
		events []Event
		cfg    Config
		want   []int // batch lengths
	}{
		{name: "none", want: nil},
		{name: "defaults", events: make([]Event, 2500), want: []int{1000, 1000, 500}},
		{name: "event cap", events: []Event{ev(10), ev(10), ev(10)}, cfg: Config{MaxEvents: 2}, want: []int{2, 1}},
		{name: "byte cap exact", events: []Event{ev(10), ev(10), ev(10)}, cfg: Config{MaxBytes: over + 2*one}, want: []int{2, 1}},
		{name: "byte cap one short", events: []Event{ev(10), ev(10), ev(10)}, cfg: Config{MaxBytes: over + 2*one - 1}, want: []int{1, 1, 1}},
		{name: "big event alone", events: []Event{ev(10), ev(100), ev(10)}, cfg: Config{MaxBytes: over + EventSize(ev(100))}, want: []int{1, 1, 1}},
		{name: "both caps", events: make([]Event, 7), cfg: Config{MaxEvents: 3, MaxBytes: over + 2*EventSize(Event{})}, want: []int{2, 2, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, err := Split(tt.events, tt.cfg, testMeta)
			if err != nil {
				t.Fatalf("Split() = %v", err)
			}
			var got []int
			for _, b := range batches {
				got = append(got, len(b))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Split() batch lengths mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		events := randEvents(r, r.IntN(60))
		cfg := Config{MaxEvents: 1 + r.IntN(10), MaxBytes: Overhead(testMeta) + 2200 + r.IntN(10000)}
		batches, err := Split(events, cfg, testMeta)
		if err != nil {
			t.Fatalf("Split() = %v", err)
		}
		var all []*Event
		for k, b := range batches {
			if len(b) == 0 || len(b) > cfg.MaxEvents {
				t.Fatalf("batch %d has %d events, want 1..%d", k, len(b), cfg.MaxEvents)
			}
			if n := len(AppendEnvelope(nil, b, testMeta)); n > cfg.MaxBytes {
				t.Fatalf("batch %d is %d bytes, over %d", k, n, cfg.MaxBytes)
			}
			// As few bodies as possible: greedy, so the next event would not fit.
			if k+1 < len(batches) && len(b) < cfg.MaxEvents {
				if n := Size(append(b[:len(b):len(b)], batches[k+1][0]), testMeta); n <= cfg.MaxBytes {
					t.Fatalf("batch %d stopped early: with the next event it is %d <= %d bytes", k, n, cfg.MaxBytes)
				}
			}
			for i := range b {
				all = append(all, &b[i])
			}
		}
		if len(all) != len(events) {
			t.Fatalf("batches hold %d events, want %d", len(all), len(events))
		}
		for i := range all {
			if all[i] != &events[i] { // batches are sub-slices, in order
				t.Fatalf("batched event %d is not events[%d]", i, i)
			}
		}
	}
}

func TestSplitClipsCapacity(t *testing.T) {
	events := []Event{{ExternalID: "1"}, {ExternalID: "2"}, {ExternalID: "3"}}
	batches, err := Split(events, Config{MaxEvents: 1}, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(batches[0], Event{ExternalID: "x"})
	if events[1].ExternalID != "2" {
		t.Errorf("appending to batch 0 overwrote events[1] = %q", events[1].ExternalID)
	}
}

func TestSplitTooLarge(t *testing.T) {
	cfg := Config{MaxBytes: 1000}
	big := Event{ExternalID: "big", Topic: "t", Payload: make([]byte, 1000)}
	small := Event{ExternalID: "s", Topic: "t", Payload: []byte(`{}`)}
	if !Fits(small, cfg, testMeta) {
		t.Errorf("Fits(small) = false, want true")
	}
	if Fits(big, cfg, testMeta) {
		t.Errorf("Fits(big) = true, want false")
	}
	batches, err := Split([]Event{small, big}, cfg, testMeta)
	if !errors.Is(err, ErrTooLarge) || batches != nil {
		t.Errorf("Split(small, big) = %v, %v; want nil, ErrTooLarge", batches, err)
	}
	fixed := EventSize(Event{ExternalID: "e", Topic: "t"}) - len(nullPayload)
	exact := Event{ExternalID: "e", Topic: "t", Payload: make([]byte, 1000-Overhead(testMeta)-fixed)}
	if n := Size([]Event{exact}, testMeta); n != 1000 || !Fits(exact, cfg, testMeta) {
		t.Errorf("event filling exactly 1000 bytes: Size = %d, Fits = %v; want 1000, true", n, Fits(exact, cfg, testMeta))
	}
}
