package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
	more      [][]byte
}

// WithSecrets adds secrets that Verify accepts besides its secret
// argument: during a secret rotation a receiver verifies against the
// previous and the new secret, and any one that matches accepts. Each
// extra secret costs one more HMAC over the body.
func WithSecrets(secrets ...[]byte) VerifyOption {
	return func(c *verifyConfig) { c.more = append(c.more, secrets...) }
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
// Klaviyo-Timestamp header value timestamp, under secret (or any secret
// given WithSecrets). It returns nil on success and one of the package's
// errors otherwise.
//
// signature is a Klaviyo-Signature value, 64 hex digits in upper or
// lower case, or a Webhookd-Signature value, "v1=<hex>" digests
// separated by commas, of which any one may match. Anything else,
// including surrounding spaces or a "sha256=" prefix, is malformed.
// Every comparison takes constant time.
func Verify(secret, body []byte, timestamp, signature string, opts ...VerifyOption) error {
	cfg := verifyConfig{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	secrets := append([][]byte{secret}, cfg.more...)
	for _, s := range secrets {
		if len(s) == 0 {
			return ErrNoSecret
		}
	}
	digests, err := parseSignatures(signature)
	if err != nil {
		return err
	}
	// Check the time before hashing: it is cheap and turns away replays of
	// large bodies without the HMAC work.
	if cfg.tolerance > 0 {
		if err := checkTime(timestamp, cfg.now(), cfg.tolerance); err != nil {
			return err
		}
	}
	var want [sha256.Size]byte
	for _, s := range secrets {
		mac := hmac.New(sha256.New, s)
		mac.Write(body)
		mac.Write([]byte(timestamp))
		sum := mac.Sum(want[:0])
		for _, d := range digests {
			if hmac.Equal(sum, d[:]) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}

// maxSignatures bounds the digests of a Webhookd-Signature that Verify
// reads: webhookd sends at most two.
const maxSignatures = 8

// parseSignatures decodes a Klaviyo-Signature or Webhookd-Signature value.
func parseSignatures(signature string) ([][sha256.Size]byte, error) {
	if !strings.HasPrefix(signature, signaturePrefix) {
		var d [sha256.Size]byte
		if err := decodeDigest(&d, signature); err != nil {
			return nil, err
		}
		return [][sha256.Size]byte{d}, nil
	}
	parts := strings.Split(signature, ",")
	if len(parts) > maxSignatures {
		return nil, ErrMalformedSignature
	}
	out := make([][sha256.Size]byte, len(parts))
	for i, p := range parts {
		hex, ok := strings.CutPrefix(p, signaturePrefix)
		if !ok {
			return nil, ErrMalformedSignature
		}
		if err := decodeDigest(&out[i], hex); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeDigest decodes 64 hex digits into d.
func decodeDigest(d *[sha256.Size]byte, s string) error {
	if len(s) != SignatureLen {
		return ErrMalformedSignature
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return ErrMalformedSignature
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

// VerifyRequest verifies the Klaviyo-Timestamp header and the signature
// of r against body, which the caller has read from r.Body (with a size
// limit of its choosing) and still needs afterwards. The signature is
// Webhookd-Signature when r has one (every digest of a rotation), else
// Klaviyo-Signature. It does not compare the Klaviyo-Webhook-Id header
// with meta.klaviyo_webhook_id in the body; receivers should do that
// once they decode the body.
func VerifyRequest(r *http.Request, secret, body []byte, opts ...VerifyOption) error {
	ts := r.Header.Get(HeaderTimestamp)
	if ts == "" {
		return fmt.Errorf("%s: %w", HeaderTimestamp, ErrMissingHeader)
	}
	sig := r.Header.Get(HeaderSignatures)
	if sig == "" {
		sig = r.Header.Get(HeaderSignature)
	}
	if sig == "" {
		return fmt.Errorf("%s: %w", HeaderSignature, ErrMissingHeader)
	}
	return Verify(secret, body, ts, sig, opts...)
}
