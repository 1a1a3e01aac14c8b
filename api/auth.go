package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handler is an API handler of one authenticated account. Its error
// becomes the response through fail.
type handler func(w http.ResponseWriter, r *http.Request, account string) error

// auth authenticates the request and runs h for its account. The key is
// read from "Authorization: Klaviyo-API-Key <key>" or "Bearer <key>"
// (scheme case-insensitive) and never logged. The revision header is
// accepted whatever its value, and its absence means the latest.
func (s *server) auth(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := credentials(r.Header.Get("Authorization"))
		if !ok {
			s.fail(w, r, errNoCredentials)
			return
		}
		now := time.Now()
		// An address that presented too many bad keys is refused before
		// its key is checked, so its answers tell it nothing.
		if wait := s.cfg.AuthLimit.Wait(r, now); wait > 0 {
			s.fail(w, r, authThrottled(w, wait))
			return
		}
		account, ok := s.keys.Lookup(key)
		if !ok {
			s.cfg.AuthLimit.Failed(r, now)
			s.fail(w, r, errBadCredentials)
			return
		}
		setAccount(r.Context(), account)
		if err := s.rate.take(w, account, now); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r, account); err != nil {
			s.fail(w, r, err)
		}
	})
}

// authThrottled is the 429 of an address past the failed-authentication
// limit, in Klaviyo's throttled shape with Retry-After.
func authThrottled(w http.ResponseWriter, wait time.Duration) error {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &apiError{status: http.StatusTooManyRequests, code: codeThrottled, pointer: "/data/",
		detail: fmt.Sprintf("Too many requests with an incorrect API key from this address. Expected available in %d seconds.", secs)}
}

// credentials extracts the key of an Authorization header value.
func credentials(header string) (key string, ok bool) {
	scheme, key, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found {
		return "", false
	}
	if !strings.EqualFold(scheme, "Klaviyo-API-Key") && !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != ""
}

// requestInfo carries what the access log learns while the request runs.
type requestInfo struct {
	account string
}

type requestInfoKey struct{}

// setAccount records the authenticated account for the access log.
func setAccount(ctx context.Context, account string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.account = account
	}
}
