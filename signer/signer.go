// Package signer computes and checks the Klaviyo-Signature of a system
// webhook request.
//
// The signature is the lowercase hex HMAC-SHA256, keyed with the webhook's
// secret, of the raw request body followed by the exact Klaviyo-Timestamp
// header value, with no separator (reference/klaviyo-api.md §7.3). The
// sender calls [SetHeaders] once per request; receivers written in Go call
// [Verify] or [VerifyRequest]. The package does no I/O.
package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Header names of a signed delivery. They are already in canonical form,
// so they can index an [http.Header] directly.
const (
	HeaderWebhookID = "Klaviyo-Webhook-Id"
	HeaderTimestamp = "Klaviyo-Timestamp"
	HeaderSignature = "Klaviyo-Signature"
)

// SignatureLen is the length of a signature in hex characters
// (a SHA-256 digest is 32 bytes).
const SignatureLen = 2 * sha256.Size

// Sign returns the signature of body sent with the Klaviyo-Timestamp header
// value timestamp: the lowercase hex HMAC-SHA256 of body followed by
// timestamp. The timestamp is hashed exactly as given, so it must be the
// header string that is sent, not a reformatted time.
func Sign(secret, body []byte, timestamp string) string {
	var buf [SignatureLen]byte
	return string(AppendSign(buf[:0], secret, body, timestamp))
}

// AppendSign appends the signature [Sign] would return to dst and returns
// the extended slice. It lets a caller reuse a buffer (or a stack array) and
// so avoid the string allocation of Sign.
func AppendSign(dst, secret, body []byte, timestamp string) []byte {
	var sum [sha256.Size]byte
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	mac.Write([]byte(timestamp))
	return hex.AppendEncode(dst, mac.Sum(sum[:0]))
}

// Timestamp formats t as a Klaviyo-Timestamp header value, the HTTP date
// "Thu, 04 Jan 2024 18:05:25 GMT". The header has one-second resolution.
func Timestamp(t time.Time) string {
	return t.UTC().Format(http.TimeFormat)
}

// SetHeaders sets the three Klaviyo headers of a delivery on h: the webhook
// id, the timestamp formatted from now, and the signature of body under
// secret. The body must be the exact bytes that will be sent; any change
// afterwards invalidates the signature. webhookID must also appear as
// meta.klaviyo_webhook_id in the body, which receivers check.
func SetHeaders(h http.Header, webhookID string, secret, body []byte, now time.Time) {
	ts := Timestamp(now)
	h[HeaderWebhookID] = []string{webhookID}
	h[HeaderTimestamp] = []string{ts}
	h[HeaderSignature] = []string{Sign(secret, body, ts)}
}
