package api

import "time"

// Limiter is the API's rate limit per account, exported so that the web
// console on the same listener shares it: console pages and API calls of
// one account draw from one bucket. Pass it in Config.Limiter and to the
// console.
type Limiter struct{ l *limiters }

// NewLimiter returns perSecond requests per second per account with
// burst above it; perSecond 0 is no limit.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{l: newLimiters(perSecond, burst)}
}

// Take spends one token of account's bucket and returns 0, or how long
// until a token is available when the bucket is empty.
func (l *Limiter) Take(account string, now time.Time) time.Duration {
	if l == nil || l.l == nil {
		return 0
	}
	delay, _ := l.l.reserve(account, now)
	return delay
}
