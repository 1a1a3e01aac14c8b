package signer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// During a rotation Klaviyo-Signature carries the primary's digest alone
// and Webhookd-Signature one digest per secret, primary first; a receiver
// that knows either secret verifies, one that knows neither does not.
func TestRotatingHeaders(t *testing.T) {
	oldS, newS, other := []byte("old-secret-0123456789"), []byte("new-secret-0123456789"), []byte("other-secret-012345")
	body := []byte(`{"data":[]}`)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := http.Header{}
	SetHeadersRotating(h, "wh", [][]byte{newS, oldS}, body, now)
	ts := h.Get(HeaderTimestamp)
	if got, want := h.Get(HeaderSignature), Sign(newS, body, ts); got != want {
		t.Errorf("Klaviyo-Signature = %q, want the primary's %q", got, want)
	}
	if got, want := h.Get(HeaderSignatures), "v1="+Sign(newS, body, ts)+",v1="+Sign(oldS, body, ts); got != want {
		t.Errorf("Webhookd-Signature = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		name    string
		secrets [][]byte
		header  string
		want    error
	}{
		{"old secret, Webhookd-Signature", [][]byte{oldS}, HeaderSignatures, nil},
		{"new secret, Webhookd-Signature", [][]byte{newS}, HeaderSignatures, nil},
		{"both, Klaviyo-Signature", [][]byte{oldS, newS}, HeaderSignature, nil},
		{"old only, Klaviyo-Signature (primary is new)", [][]byte{oldS}, HeaderSignature, ErrInvalidSignature},
		{"neither", [][]byte{other}, HeaderSignatures, ErrInvalidSignature},
		{"one good of several", [][]byte{other, oldS}, HeaderSignatures, nil},
		{"empty extra secret", [][]byte{oldS, {}}, HeaderSignatures, ErrNoSecret},
	} {
		err := Verify(tc.secrets[0], body, ts, h.Get(tc.header), WithSecrets(tc.secrets[1:]...))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header = h
	if err := VerifyRequest(r, oldS, body); err != nil {
		t.Errorf("VerifyRequest(old secret) = %v, want nil (Webhookd-Signature is read first)", err)
	}
}

func TestVerifyMalformedList(t *testing.T) {
	secret, body, ts := []byte("k"), []byte("b"), "t"
	good := "v1=" + Sign(secret, body, ts)
	for _, sig := range []string{
		"v1=", "v1=zz", good + ",", good + ",v2=" + Sign(secret, body, ts), good + ", " + good,
		"v1=" + Sign(secret, body, ts) + "0", good + ",v1=" + Sign(secret, body, ts)[:10],
		good + ",v1=" + Sign(secret, body, ts) + ",v1=" + Sign(secret, body, ts) + ",v1=" + Sign(secret, body, ts) +
			",v1=" + Sign(secret, body, ts) + ",v1=" + Sign(secret, body, ts) + ",v1=" + Sign(secret, body, ts) +
			",v1=" + Sign(secret, body, ts) + ",v1=" + Sign(secret, body, ts),
	} {
		if err := Verify(secret, body, ts, sig); !errors.Is(err, ErrMalformedSignature) {
			t.Errorf("Verify(%q) = %v, want ErrMalformedSignature", sig, err)
		}
	}
	if err := Verify(secret, body, ts, good+",v1="+Sign([]byte("x"), body, ts)); err != nil {
		t.Errorf("Verify(good, other) = %v, want nil", err)
	}
}
