package sink

import (
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/bits"
	"sync"
	"time"
)

// stats counts what the sink receives. One mutex guards everything:
// a request takes it a few times (enter, leave, and once to record its
// batch), which is cheap next to reading, verifying and scanning a body.
// Recording a 1,000-event batch holds it for roughly 50 µs of map inserts.
type stats struct {
	// Seeds of the dedupe key (see dedupeKey). They live as long as the
	// process, so keys recorded before a reset stay comparable after it.
	idSeed, webhookSeed maphash.Seed

	mu    sync.Mutex
	start time.Time

	requests, batches, events, unique, duplicates int64
	badSignatures, mismatches, malformed          int64
	injectedFailures, rejected                    int64
	inFlight, peakInFlight                        int64
	maxBatchEvents                                int
	topics, webhooks                              map[string]int64
	// seen holds the dedupe key of every accepted event: 8 bytes of key
	// and about as much map overhead each, so a run of 10 million events
	// costs some 200 MB. One event delivered to two webhooks is not a
	// duplicate, which is why the key covers the webhook id too.
	seen    map[uint64]struct{}
	latency latencyHistogram // publish→receive, from published_ns
}

func newStats(now time.Time) *stats {
	s := &stats{idSeed: maphash.MakeSeed(), webhookSeed: maphash.MakeSeed()}
	s.resetLocked(now)
	return s
}

// resetLocked zeroes every counter except in_flight and restarts the
// clock; peak_in_flight restarts from the requests in flight now. The
// caller holds mu (or owns s exclusively).
func (s *stats) resetLocked(now time.Time) {
	s.start = now
	s.requests, s.batches, s.events, s.unique, s.duplicates = 0, 0, 0, 0, 0
	s.badSignatures, s.mismatches, s.malformed = 0, 0, 0
	s.injectedFailures, s.rejected = 0, 0
	s.peakInFlight, s.maxBatchEvents = s.inFlight, 0
	s.topics, s.webhooks = map[string]int64{}, map[string]int64{}
	s.seen = map[uint64]struct{}{}
	s.latency = latencyHistogram{}
}

// reset starts a new measurement period at now and returns the summary
// of the one it ends.
func (s *stats) reset(now time.Time) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.summaryLocked(now)
	s.resetLocked(now)
	return out
}

// webhookHash is the webhook half of a dedupe key; compute it once per
// request and pass it to dedupeKey for every event.
func (s *stats) webhookHash(webhookID string) uint64 {
	return maphash.String(s.webhookSeed, webhookID)
}

// dedupeKey is the 64-bit key of (webhook, external_id): the xor of two
// independently seeded hashes. Two different pairs collide with
// probability 2^-64, so in a run of n events the chance that any unique
// event is miscounted as a duplicate is about n²/2^65: 3e-8 for a million
// events, 3e-6 for ten million. Separate seeds keep the swapped pair
// (webhook A, id B) / (webhook B, id A) from colliding.
func (s *stats) dedupeKey(webhookHash uint64, externalID []byte) uint64 {
	return webhookHash ^ maphash.Bytes(s.idSeed, externalID)
}

// enter and leave track concurrent delivery requests and their peak.
func (s *stats) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.inFlight++
	s.peakInFlight = max(s.peakInFlight, s.inFlight)
}

func (s *stats) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// count adds one to c, one of the outcome counters of s
// (&s.badSignatures, &s.rejected, ...).
func (s *stats) count(c *int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*c++
}

// accept records the accepted batch d of webhookID, received at now,
// and returns how many of its events were duplicates.
func (s *stats) accept(webhookID string, d *deliveryScan, now time.Time) int {
	nowNS := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(d.keys)
	s.batches++
	s.events += int64(n)
	s.maxBatchEvents = max(s.maxBatchEvents, n)
	s.webhooks[webhookID] += int64(n)
	for _, t := range d.topics {
		s.topics[t.name] += t.n
	}
	dups := 0
	for _, k := range d.keys {
		if _, ok := s.seen[k]; ok {
			dups++
			continue
		}
		s.seen[k] = struct{}{}
	}
	s.duplicates += int64(dups)
	s.unique += int64(n - dups)
	for _, pub := range d.published {
		s.latency.record(max(nowNS-pub, 0) / int64(time.Microsecond))
	}
	return dups
}

// summary returns a consistent snapshot at now.
func (s *stats) summary(now time.Time) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.summaryLocked(now)
}

func (s *stats) summaryLocked(now time.Time) Summary {
	out := Summary{
		Requests: s.requests, Batches: s.batches, Events: s.events, UniqueEvents: s.unique,
		Duplicates: s.duplicates, BadSignatures: s.badSignatures, Mismatches: s.mismatches,
		Malformed: s.malformed, InjectedFailures: s.injectedFailures, Rejected: s.rejected,
		InFlight: s.inFlight, PeakInFlight: s.peakInFlight, MaxBatchEvents: s.maxBatchEvents,
		Topics: maps.Clone(s.topics), Webhooks: maps.Clone(s.webhooks),
		Latency:        s.latency.summary(),
		ElapsedSeconds: now.Sub(s.start).Seconds(),
	}
	if out.ElapsedSeconds > 0 {
		out.EventsPerSecond = float64(out.Events) / out.ElapsedSeconds
	}
	return out
}

// Summary is the JSON of GET /stats and of the final summary line.
// Events count only accepted batches: those that verified, parsed, and
// were answered with a success Config.Status. A request whose client went
// away during Config.Delay is counted in requests only.
type Summary struct {
	Requests         int64            `json:"requests"` // every delivery POST, whatever its outcome
	Batches          int64            `json:"batches"`  // accepted requests
	Events           int64            `json:"events"`
	UniqueEvents     int64            `json:"unique_events"`
	Duplicates       int64            `json:"duplicates"` // same webhook and external_id seen before
	BadSignatures    int64            `json:"bad_signatures"`
	Mismatches       int64            `json:"mismatches"` // Klaviyo-Webhook-Id != meta.klaviyo_webhook_id
	Malformed        int64            `json:"malformed"`  // not the envelope, or over --max-body
	InjectedFailures int64            `json:"injected_failures"`
	Rejected         int64            `json:"rejected"` // verified requests answered with a non-success Config.Status
	InFlight         int64            `json:"in_flight"`
	PeakInFlight     int64            `json:"peak_in_flight"`
	MaxBatchEvents   int              `json:"max_batch_events"`
	Topics           map[string]int64 `json:"topics"`   // accepted events per topic
	Webhooks         map[string]int64 `json:"webhooks"` // accepted events per webhook id
	Latency          *LatencySummary  `json:"latency_ms,omitempty"`
	ElapsedSeconds   float64          `json:"elapsed_s"` // since start or the last reset
	EventsPerSecond  float64          `json:"events_per_s"`
}

// LatencySummary is publish→receive latency in milliseconds over every
// accepted event that carried published_ns. Percentiles are accurate to
// 0.4% (see latencyHistogram); max is exact to the microsecond.
type LatencySummary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Line is the one-line human report.
func (m Summary) Line() string {
	s := fmt.Sprintf("sink: %d requests, %d batches, %d events (%d unique, %d duplicates), %.0f events/s; "+
		"%d bad signatures, %d mismatches, %d malformed, %d injected failures, %d rejected; in flight %d (peak %d)",
		m.Requests, m.Batches, m.Events, m.UniqueEvents, m.Duplicates, m.EventsPerSecond,
		m.BadSignatures, m.Mismatches, m.Malformed, m.InjectedFailures, m.Rejected, m.InFlight, m.PeakInFlight)
	if m.Latency != nil {
		s += fmt.Sprintf("; latency p50 %.1fms p99 %.1fms max %.1fms", m.Latency.P50, m.Latency.P99, m.Latency.Max)
	}
	return s
}

// latencyHistogram is a log-linear histogram of microsecond values, so a
// run of any length takes the same 58 KiB. Values below 256 µs have a
// bucket each; above, every power of two is split into 128 buckets, so a
// bucket's midpoint is within 1/256 (0.4%) of any value in it.
type latencyHistogram struct {
	counts   [latBuckets]int64
	n, maxUS int64
}

const (
	latSubBits = 7
	latSub     = 1 << latSubBits
	// latBuckets covers every int64: bucket shift*latSub+m for mantissa
	// m in [latSub, 2*latSub) and shift up to 63-latSubBits.
	latBuckets = (64 - latSubBits + 1) * latSub
)

// latBucket returns the bucket of v ≥ 0.
func latBucket(v int64) int {
	if v < 2*latSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - latSubBits - 1
	return shift*latSub + int(v>>shift)
}

// latBucketMid returns the middle of bucket i.
func latBucketMid(i int) int64 {
	if i < 2*latSub {
		return int64(i)
	}
	shift := i/latSub - 1
	m := int64(i%latSub + latSub)
	return m<<shift + (int64(1)<<shift)/2
}

func (h *latencyHistogram) record(us int64) {
	h.counts[latBucket(us)]++
	h.n++
	h.maxUS = max(h.maxUS, us)
}

// quantile returns the nearest-rank q-quantile in µs: the middle of the
// bucket holding it, never above the maximum.
func (h *latencyHistogram) quantile(q float64) int64 {
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(latBucketMid(i), h.maxUS)
		}
	}
	return h.maxUS
}

func (h *latencyHistogram) summary() *LatencySummary {
	if h.n == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &LatencySummary{Count: int(h.n), P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), Max: ms(h.maxUS)}
}
