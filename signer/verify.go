package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Errors returned by [Verify] and [VerifyRequest]. Receivers should answer
// every one of them the same way (401 or 403) and not reveal which check
// failed.
var (
	// ErrNoSecret means the secret is empty: anyone can compute such a
	// signature, so Verify refuses to accept it.
	ErrNoSecret = errors.New("signer: empty secret")
	// ErrMissingHeader means a request lacks the timestamp or signature header.
	ErrMissingHeader = errors.New("signer: missing header")
	// ErrMalformedSignature means the signature is not 64 hex digits.
	ErrMalformedSignature = errors.New("signer: malformed signature")
	// ErrMalformedTimestamp means a tolerance was requested but the
	// timestamp is not an HTTP date such as "Thu, 04 Jan 2024 18:05:25 GMT".
	ErrMalformedTimestamp = errors.New("signer: malformed timestamp")
	// ErrTimestampOutOfRange means the timestamp is further from the
	// current time than the requested tolerance.
	ErrTimestampOutOfRange = errors.New("signer: timestamp out of range")
	// ErrInvalidSignature means the signature does not match body,
	// timestamp and secret.
	ErrInvalidSignature = errors.New("signer: invalid signature")
)

// A VerifyOption changes how [Verify] checks a request.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	tolerance time.Duration
	now       func() time.Time
}

// WithTolerance makes Verify reject a timestamp more than d before or after
// the current time, which bounds how long a captured request can be
// replayed. The default, 0, checks no time at all.
//
// Klaviyo's own Klaviyo-Timestamp header has been observed 5 hours ahead of
// real time (reference/klaviyo-api.md §7.1), so receivers of Klaviyo traffic
// should check freshness against meta.timestamp in the body instead.
// Requests from webhookd carry the correct time.
func WithTolerance(d time.Duration) VerifyOption {
	return func(c *verifyConfig) { c.tolerance = d }
}

// WithClock sets the clock WithTolerance compares against; the default is
// [time.Now]. It exists for tests.
func WithClock(now func() time.Time) VerifyOption {
	return func(c *verifyConfig) { c.now = now }
}

// Verify reports whether signature is the signature of body sent with the
// Klaviyo-Timestamp header value timestamp, under secret. It returns nil on
// success and one of the package's errors otherwise.
//
// The signature may be upper- or lowercase hex; anything else, including
// surrounding spaces or a "sha256=" prefix, is malformed. The comparison
// takes constant time.
func Verify(secret, body []byte, timestamp, signature string, opts ...VerifyOption) error {
	cfg := verifyConfig{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if len(secret) == 0 {
		return ErrNoSecret
	}
	var got [sha256.Size]byte
	if len(signature) != SignatureLen {
		return ErrMalformedSignature
	}
	if _, err := hex.Decode(got[:], []byte(signature)); err != nil {
		return ErrMalformedSignature
	}
	// Check the time before hashing: it is cheap and turns away replays of
	// large bodies without the HMAC work.
	if cfg.tolerance > 0 {
		if err := checkTime(timestamp, cfg.now(), cfg.tolerance); err != nil {
			return err
		}
	}
	var want [sha256.Size]byte
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	mac.Write([]byte(timestamp))
	if !hmac.Equal(mac.Sum(want[:0]), got[:]) {
		return ErrInvalidSignature
	}
	return nil
}

// checkTime returns nil if timestamp, an HTTP date, lies within tolerance
// of now.
func checkTime(timestamp string, now time.Time, tolerance time.Duration) error {
	t, err := time.Parse(http.TimeFormat, timestamp)
	if err != nil {
		return ErrMalformedTimestamp
	}
	d := now.Sub(t)
	if d < -tolerance || d > tolerance {
		return ErrTimestampOutOfRange
	}
	return nil
}

// VerifyRequest verifies the Klaviyo-Timestamp and Klaviyo-Signature headers
// of r against body, which the caller has read from r.Body (with a size
// limit of its choosing) and still needs afterwards. It does not compare
// the Klaviyo-Webhook-Id header with meta.klaviyo_webhook_id in the body;
// receivers should do that once they decode the body.
func VerifyRequest(r *http.Request, secret, body []byte, opts ...VerifyOption) error {
	ts := r.Header.Get(HeaderTimestamp)
	if ts == "" {
		return fmt.Errorf("%s: %w", HeaderTimestamp, ErrMissingHeader)
	}
	sig := r.Header.Get(HeaderSignature)
	if sig == "" {
		return fmt.Errorf("%s: %w", HeaderSignature, ErrMissingHeader)
	}
	return Verify(secret, body, ts, sig, opts...)
}
