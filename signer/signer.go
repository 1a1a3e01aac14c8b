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
	// HeaderSignatures is webhookd's extension for secret rotation: one
	// "v1=<hex>" digest per active secret, primary first, comma
	// separated, each computed exactly like Klaviyo-Signature.
	HeaderSignatures = "Webhookd-Signature"
)

// signaturePrefix tags each digest of Webhookd-Signature with its scheme
// (v1: Klaviyo's HMAC-SHA256 over body and timestamp), so that another
// scheme can be added beside it later.
const signaturePrefix = "v1="

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

// SetHeaders sets the Klaviyo headers of a delivery on h: the webhook
// id, the timestamp formatted from now, and the signature of body under
// secret; and Webhookd-Signature with the same digest. The body must be
// the exact bytes that will be sent; any change afterwards invalidates
// the signature. webhookID must also appear as meta.klaviyo_webhook_id
// in the body, which receivers check.
func SetHeaders(h http.Header, webhookID string, secret, body []byte, now time.Time) {
	SetHeadersRotating(h, webhookID, [][]byte{secret}, body, now)
}

// SetHeadersRotating is SetHeaders for a webhook whose secret is being
// rotated: secrets are the active ones, primary first (at least one).
// Klaviyo-Signature carries the primary's digest alone, because
// Klaviyo's documented receiver compares one hex value;
// Webhookd-Signature carries "v1=<hex>" per secret, in order, so a
// receiver that knows any one of them verifies.
func SetHeadersRotating(h http.Header, webhookID string, secrets [][]byte, body []byte, now time.Time) {
	ts := Timestamp(now)
	h[HeaderWebhookID] = []string{webhookID}
	h[HeaderTimestamp] = []string{ts}
	list := make([]byte, 0, len(secrets)*(len(signaturePrefix)+SignatureLen+1))
	for i, secret := range secrets {
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, signaturePrefix...)
		list = AppendSign(list, secret, body, ts)
	}
	h[HeaderSignature] = []string{string(list[len(signaturePrefix) : len(signaturePrefix)+SignatureLen])}
	h[HeaderSignatures] = []string{string(list)}
}
