package signer

import (
	"errors"
	"strings"
	"testing"
)

// FuzzVerify checks, for arbitrary inputs, that Verify accepts exactly the
// signature Sign produces (in either hex case), rejects it after any single
// byte of body, timestamp or signature changes, and never panics on
// arbitrary header strings. The Makefile runs it for 10 s on every make
// test; seeds are in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("klaviyo-test-secret"), []byte(`{"data":[]}`), "Thu, 04 Jan 2024 18:05:25 GMT", "", uint16(0))
	f.Add([]byte("k"), []byte{}, "", "20207af32de1a92c348f827f1eace8aefdcc554c6fc41e1e5625d4480a1cf059", uint16(7))
	f.Add([]byte("k"), []byte{}, "", "v1=20207af32de1a92c348f827f1eace8aefdcc554c6fc41e1e5625d4480a1cf059,v1=00", uint16(3))
	f.Fuzz(func(t *testing.T, secret, body []byte, ts, header string, pos uint16) {
		// Arbitrary header strings: never panic, never accept a forgery.
		err := Verify(secret, body, ts, header)
		if err == nil && !signs(header, Sign(secret, body, ts)) {
			t.Fatalf("Verify accepted %q, which is not the signature", header)
		}
		if len(secret) == 0 {
			if !errors.Is(err, ErrNoSecret) {
				t.Fatalf("Verify(empty secret) = %v, want ErrNoSecret", err)
			}
			return
		}
		sig := Sign(secret, body, ts)
		if err := Verify(secret, body, ts, sig); err != nil {
			t.Fatalf("Verify(Sign(x)) = %v, want nil", err)
		}
		if err := Verify(secret, body, ts, upper(sig)); err != nil {
			t.Fatalf("Verify(upper(Sign(x))) = %v, want nil", err)
		}
		// Flip one bit in one of the signed inputs or the signature.
		all := len(body) + len(ts) + len(sig)
		i := int(pos) % all
		b, s, g := []byte(body), []byte(ts), []byte(sig)
		switch {
		case i < len(b):
			b = append([]byte(nil), b...)
			b[i] ^= 1
		case i < len(b)+len(s):
			s[i-len(b)] ^= 1
		default:
			g[i-len(b)-len(s)] ^= 1 // may leave hex or not: both must fail
		}
		if err := Verify(secret, b, string(s), string(g)); err == nil {
			t.Fatalf("Verify accepted a change at byte %d of body+timestamp+signature", i)
		}
	})
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func equalFoldASCII(a, b string) bool {
	return len(a) == len(b) && upper(a) == upper(b)
}

// signs reports whether header, a Klaviyo-Signature or Webhookd-Signature
// value, carries sig (in either hex case).
func signs(header, sig string) bool {
	for _, h := range strings.Split(header, ",") {
		h = strings.TrimPrefix(h, "v1=")
		if h == sig || equalFoldASCII(h, sig) {
			return true
		}
	}
	return false
}
