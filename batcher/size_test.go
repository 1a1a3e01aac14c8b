package batcher

import (
	"math/rand/v2"
	"testing"
	"time"
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
