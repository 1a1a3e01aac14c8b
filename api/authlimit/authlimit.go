// Package authlimit limits failed authentication per client address:
// each address may present a bad key Burst times, then one more time per
// Refill. While an address's bucket is empty, every key it presents is
// refused before it is checked (429 with Retry-After), so an address that
// guesses cannot learn whether a later guess was right. Successful
// authentication spends nothing and waits for nothing.
//
// The address is the TCP peer (http.Request.RemoteAddr), or, when the peer
// is one of Config.Proxies, the client its X-Forwarded-For names
// (api/clientaddr); with no proxies configured X-Forwarded-For is never
// believed. An IPv6 address counts by its /64, the block one host
// usually holds.
//
// The limit is per replica (an in-memory table, not Redis): behind a load
// balancer spreading N replicas an address gets about N times the burst.
// That is enough against guessing keys of ~200 bits and avoids a Redis
// round trip on every refused key. The table holds at most MaxAddresses
// addresses; when it is full the address that failed least recently is
// forgotten, so an attacker rotating addresses cannot grow it.
package authlimit

import (
	"container/list"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api/clientaddr"
)

// Config configures a Limiter. Zero fields take the defaults shown.
type Config struct {
	// Burst is how many bad keys an address may present at once (10).
	Burst int
	// Refill is how long until an address may present one more (6s: 10
	// a minute once the burst is spent).
	Refill time.Duration
	// MaxAddresses bounds the table (10,000 addresses, about 2 MB).
	MaxAddresses int
	// Proxies are the trusted reverse proxies whose X-Forwarded-For
	// names the client (none: the TCP peer is the client).
	Proxies clientaddr.Proxies
	// Log gets one line per address per minute while it is throttled.
	Log zerolog.Logger
}

// logEvery is how often one address's throttling is logged at most.
const logEvery = time.Minute

// Stats are the limiter's counters, for the metrics.
type Stats struct {
	Failures  atomic.Int64 // bad keys presented (and refused with 401)
	Throttled atomic.Int64 // requests refused with 429
	Evicted   atomic.Int64 // addresses forgotten because the table was full
	// BadForwarded counts keys presented through a trusted proxy whose
	// X-Forwarded-For was unusable, so the proxy's address was counted.
	BadForwarded atomic.Int64
}

// Limiter is the failed-authentication limit; a nil *Limiter is no limit.
// It is safe for concurrent use.
type Limiter struct {
	cfg   Config
	stats Stats

	mu    sync.Mutex
	m     map[netip.Prefix]*list.Element // of *entry
	order list.List                      // most recently failed first
	// badLoggedAt is when an unusable X-Forwarded-For was last logged.
	badLoggedAt time.Time
}

// entry is one address's bucket.
type entry struct {
	addr       netip.Prefix
	tokens     float64 // at at
	at         time.Time
	loggedAt   time.Time // the last throttle log line
	suppressed int       // 429s since that line
}

// New returns a limiter.
func New(cfg Config) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Refill <= 0 {
		cfg.Refill = 6 * time.Second
	}
	if cfg.MaxAddresses <= 0 {
		cfg.MaxAddresses = 10_000
	}
	return &Limiter{cfg: cfg, m: map[netip.Prefix]*list.Element{}}
}

// Stats returns the live counters.
func (l *Limiter) Stats() *Stats { return &l.stats }

// Len is how many addresses the table holds.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// Wait returns how long r's address must wait before it may present a
// key, 0 when it may now. A non-zero answer counts as throttled and is
// logged at most once per address per minute.
func (l *Limiter) Wait(r *http.Request, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	addr, bad, ok := l.clientAddr(r)
	if !ok {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if bad {
		l.badForwarded(r, now)
	}
	el, ok := l.m[addr]
	if !ok {
		return 0
	}
	e := el.Value.(*entry)
	l.refill(e, now)
	if e.tokens >= 1 {
		if e.tokens >= float64(l.cfg.Burst) && now.Sub(e.loggedAt) >= logEvery {
			// Full again and nothing left to log: as if never seen.
			l.remove(el)
		}
		return 0
	}
	l.stats.Throttled.Add(1)
	e.suppressed++
	if now.Sub(e.loggedAt) >= logEvery {
		l.cfg.Log.Warn().Str("client", addr.String()).Int("refused", e.suppressed).
			Msg("authentication throttled: too many bad keys from this address")
		e.loggedAt, e.suppressed = now, 0
	}
	return time.Duration((1 - e.tokens) * float64(l.cfg.Refill))
}

// Failed records that r's address presented a bad key.
func (l *Limiter) Failed(r *http.Request, now time.Time) {
	if l == nil {
		return
	}
	l.stats.Failures.Add(1)
	addr, _, ok := l.clientAddr(r)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.m[addr]
	if !ok {
		for len(l.m) >= l.cfg.MaxAddresses {
			l.remove(l.order.Back())
			l.stats.Evicted.Add(1)
		}
		el = l.order.PushFront(&entry{addr: addr, tokens: float64(l.cfg.Burst), at: now})
		l.m[addr] = el
	}
	l.order.MoveToFront(el)
	e := el.Value.(*entry)
	l.refill(e, now)
	e.tokens = max(e.tokens-1, 0)
}

func (l *Limiter) refill(e *entry, now time.Time) {
	if d := now.Sub(e.at); d > 0 {
		e.tokens = min(e.tokens+float64(d)/float64(l.cfg.Refill), float64(l.cfg.Burst))
		e.at = now
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.m, el.Value.(*entry).addr)
	l.order.Remove(el)
}

// badForwarded counts a key presented through a trusted proxy whose
// X-Forwarded-For could not be used, logging it at most once a minute
// (a misconfigured proxy sends it on every request). l.mu is held.
func (l *Limiter) badForwarded(r *http.Request, now time.Time) {
	l.stats.BadForwarded.Add(1)
	if now.Sub(l.badLoggedAt) < logEvery {
		return
	}
	l.badLoggedAt = now
	l.cfg.Log.Warn().Str("proxy", r.RemoteAddr).
		Msg("X-Forwarded-For from a trusted proxy is not a list of IP addresses; counting bad keys by the proxy's address")
}

// clientAddr is r's client address as the bucket's key: the address
// itself for IPv4, its /64 for IPv6. bad reports that it is a trusted
// proxy's because X-Forwarded-For was unusable; !ok that there is none.
func (l *Limiter) clientAddr(r *http.Request) (key netip.Prefix, bad, ok bool) {
	ip, err := l.cfg.Proxies.Client(r)
	bad = errors.Is(err, clientaddr.ErrBadForwarded)
	if err != nil && !bad {
		return netip.Prefix{}, false, false
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	key, err = ip.Prefix(bits)
	return key, bad, err == nil
}
