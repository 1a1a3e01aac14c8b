package signer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	secret := []byte("klaviyo-test-secret")
	body := []byte(`{"data":[]}`)
	ts := "Thu, 04 Jan 2024 18:05:25 GMT"
	sig := Sign(secret, body, ts)
	sent, _ := time.Parse(http.TimeFormat, ts)
	at := func(d time.Duration) VerifyOption {
		return WithClock(func() time.Time { return sent.Add(d) })
	}
	flipped := []byte(sig)
	flipped[10] ^= 1

	tests := []struct {
		name   string
		secret []byte
		body   string
		ts     string
		sig    string
		opts   []VerifyOption
		want   error
	}{
		{name: "valid", sig: sig},
		{name: "uppercase hex", sig: strings.ToUpper(sig)},
		{name: "wrong secret", secret: []byte("other"), sig: sig, want: ErrInvalidSignature},
		{name: "empty secret", secret: []byte{}, sig: sig, want: ErrNoSecret},
		{name: "other body", body: `{"data":[ ]}`, sig: sig, want: ErrInvalidSignature},
		{name: "other timestamp", ts: "Thu, 04 Jan 2024 18:05:26 GMT", sig: sig, want: ErrInvalidSignature},
		{name: "flipped bit", sig: string(flipped), want: ErrInvalidSignature},
		{name: "empty signature", sig: "", want: ErrMalformedSignature},
		{name: "short", sig: sig[:63], want: ErrMalformedSignature},
		{name: "long", sig: sig + "0", want: ErrMalformedSignature},
		{name: "prefix", sig: "sha256=" + sig[:57], want: ErrMalformedSignature},
		{name: "space", sig: " " + sig[1:], want: ErrMalformedSignature},
		{name: "non-hex", sig: "g" + sig[1:], want: ErrMalformedSignature},
		{name: "within tolerance", sig: sig, opts: []VerifyOption{WithTolerance(5 * time.Minute), at(5 * time.Minute)}},
		{name: "within tolerance early", sig: sig, opts: []VerifyOption{WithTolerance(5 * time.Minute), at(-5 * time.Minute)}},
		{name: "too old", sig: sig, opts: []VerifyOption{WithTolerance(5 * time.Minute), at(5*time.Minute + time.Second)}, want: ErrTimestampOutOfRange},
		{name: "too new", sig: sig, opts: []VerifyOption{WithTolerance(5 * time.Minute), at(-6 * time.Minute)}, want: ErrTimestampOutOfRange},
		{name: "no tolerance ignores age", sig: sig, opts: []VerifyOption{at(48 * time.Hour)}},
		{name: "malformed timestamp", ts: "1704391525", sig: Sign(secret, body, "1704391525"), opts: []VerifyOption{WithTolerance(time.Minute)}, want: ErrMalformedTimestamp},
		{name: "malformed timestamp without tolerance", ts: "1704391525", sig: Sign(secret, body, "1704391525")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b, ts2 := secret, body, ts
			if tt.secret != nil {
				s = tt.secret
			}
			if tt.body != "" {
				b = []byte(tt.body)
			}
			if tt.ts != "" {
				ts2 = tt.ts
			}
			if err := Verify(s, b, ts2, tt.sig, tt.opts...); !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q, %q, %q, %q) = %v, want %v", s, b, ts2, tt.sig, err, tt.want)
			}
		})
	}
}

func TestVerifyRequest(t *testing.T) {
	secret := []byte("klaviyo-test-secret")
	body := []byte(`{"data":[]}`)
	now := time.Date(2024, 1, 4, 18, 5, 25, 0, time.UTC)
	clock := WithClock(func() time.Time { return now })

	tests := []struct {
		name  string
		strip string // header to delete
		want  error
	}{
		{name: "valid"},
		{name: "no timestamp", strip: HeaderTimestamp, want: ErrMissingHeader},
		{name: "no signature", strip: HeaderSignature, want: ErrMissingHeader},
		{name: "Klaviyo-Signature only", strip: HeaderSignatures},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/hook", nil)
			SetHeaders(r.Header, "wh", secret, body, now)
			r.Header.Del(tt.strip)
			if tt.strip == HeaderSignature {
				r.Header.Del(HeaderSignatures)
			}
			err := VerifyRequest(r, secret, body, WithTolerance(time.Minute), clock)
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyRequest(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if err != nil && tt.strip != "" && !strings.Contains(err.Error(), tt.strip) {
				t.Errorf("VerifyRequest error %q does not name header %s", err, tt.strip)
			}
		})
	}
}
