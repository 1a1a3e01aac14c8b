package flows

import "time"

// retryFactors is the retry schedule in units of Config.RetryBase: with
// the default 30 s, the waits after each failed attempt are 30s, 1m, 2m,
// 4m, 8m, 16m, 32m, 1h, then 2h20m nine times. That is Klaviyo's "up to
// 17 times over the course of 24 hours with exponential backoff … at a
// decreasing rate": the 17th retry happens 23h03m30s after the first
// attempt, inside the 24 h window.
var retryFactors = [...]int{1, 2, 4, 8, 16, 32, 64, 120, 280, 280, 280, 280, 280, 280, 280, 280, 280}

// MaxRetries is the number of retries after the first attempt.
const MaxRetries = len(retryFactors)

// windowFactor is the retry window, 24 h in units of RetryBase (30 s).
const windowFactor = 2880

// retryDelay returns how long to wait after the attempt-th request
// failed (1-based), and false once the retries are used up. A
// Retry-After asking for longer is honoured, but never past the window
// that started at first.
func (c Config) retryDelay(attempt int, retryAfter time.Duration, first, now time.Time) (time.Duration, bool) {
	if attempt > MaxRetries {
		return 0, false
	}
	d := c.RetryBase * time.Duration(retryFactors[attempt-1])
	if retryAfter > d {
		d = retryAfter
	}
	if end := first.Add(c.RetryBase * windowFactor); now.Add(d).After(end) {
		d = max(end.Sub(now), c.RetryBase*time.Duration(retryFactors[attempt-1]))
	}
	return d, true
}
