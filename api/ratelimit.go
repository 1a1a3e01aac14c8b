package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// codeThrottled is Klaviyo's 429 code (a captured Klaviyo 429 uses it
// with source.pointer "/data/").
const codeThrottled = "throttled"

// limiters holds one token bucket per account. Accounts come from the
// configured API keys, so the map is bounded.
type limiters struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	if perSecond <= 0 {
		return nil
	}
	return &limiters{limit: rate.Limit(perSecond), burst: max(burst, 1), m: map[string]*rate.Limiter{}}
}

// take spends one token of account's bucket. It sets the RateLimit-*
// headers Klaviyo sends and returns a 429 error when the bucket is empty.
func (l *limiters) take(w http.ResponseWriter, account string, now time.Time) error {
	if l == nil {
		return nil
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(l.burst))
	delay, left := l.reserve(account, now)
	if delay > 0 {
		secs := int(math.Ceil(delay.Seconds()))
		h.Set("RateLimit-Remaining", "0")
		h.Set("RateLimit-Reset", strconv.Itoa(secs))
		h.Set("Retry-After", strconv.Itoa(secs))
		return &apiError{status: http.StatusTooManyRequests, code: codeThrottled, pointer: "/data/",
			detail: fmt.Sprintf("Request was throttled. Expected available in %d seconds.", secs)}
	}
	h.Set("RateLimit-Remaining", strconv.Itoa(int(left)))
	// Seconds until the bucket is full again.
	h.Set("RateLimit-Reset", strconv.Itoa(int(math.Ceil((float64(l.burst)-left)/float64(l.limit)))))
	return nil
}

// reserve spends one token of account's bucket and returns 0 and the
// tokens left, or, when the bucket is empty, how long until a token is
// available (nothing is spent).
func (l *limiters) reserve(account string, now time.Time) (delay time.Duration, left float64) {
	l.mu.Lock()
	lim, ok := l.m[account]
	if !ok {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[account] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return delay, 0
	}
	return 0, lim.TokensAt(now)
}
