package sink

import (
	"errors"
	"sync"
	"time"

	"github.com/webhookd/webhookd/signer"
)

// secretSet verifies a signature against several candidate secrets. It
// remembers which secret verified each webhook id, so with 100 webhooks
// and 100 secrets a request costs one HMAC, not a hundred.
type secretSet struct {
	secrets [][]byte

	mu        sync.RWMutex
	byWebhook map[string]int // webhook id → index into secrets
}

func newSecretSet(secrets []string) *secretSet {
	ss := &secretSet{byWebhook: map[string]int{}}
	for _, s := range secrets {
		ss.secrets = append(ss.secrets, []byte(s))
	}
	return ss
}

// verify reports whether signature signs body and timestamp under any
// of the secrets.
func (ss *secretSet) verify(webhookID, timestamp, signature string, body []byte) bool {
	if timestamp == "" || signature == "" {
		return false
	}
	ss.mu.RLock()
	known, ok := ss.byWebhook[webhookID]
	ss.mu.RUnlock()
	if ok && signer.Verify(ss.secrets[known], body, timestamp, signature) == nil {
		return true
	}
	for i, secret := range ss.secrets {
		if ok && i == known {
			continue
		}
		switch err := signer.Verify(secret, body, timestamp, signature); {
		case err == nil:
			if len(ss.secrets) > 1 {
				ss.remember(webhookID, i)
			}
			return true
		case errors.Is(err, signer.ErrMalformedSignature):
			return false // no secret can match
		}
	}
	return false
}

func (ss *secretSet) remember(webhookID string, i int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.byWebhook[webhookID]; ok || len(ss.byWebhook) < maxRememberedWebhooks {
		ss.byWebhook[webhookID] = i
	}
}

// logLimiter lets one log line through per second and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether a line may be logged at now and, if so, how many
// were suppressed since the previous one.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.suppressed, l.next = 0, now.Add(time.Second)
	return true, n
}
