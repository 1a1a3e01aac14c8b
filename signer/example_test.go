package signer_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/webhookd/webhookd/signer"
)

func ExampleSign() {
	secret := []byte("klaviyo-test-secret")
	fmt.Println(signer.Sign(secret, nil, "Thu, 04 Jan 2024 18:05:25 GMT"))
	// Output: 20207af32de1a92c348f827f1eace8aefdcc554c6fc41e1e5625d4480a1cf059
}

func ExampleVerify() {
	secret := []byte("klaviyo-test-secret")
	body := []byte(`{"data":[{"external_id":"4L3cwQae2TX","topic":"event:klaviyo.sent_sms"}],"meta":{"klaviyo_webhook_id":"a8b890458b4bbfaa26d961471b83c101d6de23bd826e7e5173a15310985ec3cb"}}`)
	ts := "Thu, 04 Jan 2024 18:05:25 GMT"
	sig := "5aa0e720d80b3a04ca04baf3c65cdfe31da57504af69fee8da29c35d45f0596b"

	fmt.Println(signer.Verify(secret, body, ts, sig))
	fmt.Println(signer.Verify(secret, append(body, ' '), ts, sig))

	// A receiver that also bounds replays checks the timestamp's age.
	later := func() time.Time { return time.Date(2024, 1, 4, 18, 15, 0, 0, time.UTC) }
	err := signer.Verify(secret, body, ts, sig, signer.WithTolerance(5*time.Minute), signer.WithClock(later))
	fmt.Println(errors.Is(err, signer.ErrTimestampOutOfRange))
	// Output:
	// <nil>
	// signer: invalid signature
	// true
}

// During a secret rotation the sender signs with both secrets; a
// receiver that knows either one verifies Webhookd-Signature.
func ExampleSetHeadersRotating() {
	oldSecret, newSecret := []byte("klaviyo-test-secret"), []byte("rotated-test-secret")
	body := []byte(`{"data":[]}`)
	h := http.Header{}
	signer.SetHeadersRotating(h, "wh", [][]byte{newSecret, oldSecret}, body, time.Date(2024, 1, 4, 18, 5, 25, 0, time.UTC))
	fmt.Println(strings.Count(h.Get(signer.HeaderSignatures), "v1="))
	ts, sigs := h.Get(signer.HeaderTimestamp), h.Get(signer.HeaderSignatures)
	fmt.Println(signer.Verify(oldSecret, body, ts, sigs))
	fmt.Println(signer.Verify(newSecret, body, ts, sigs))
	// Klaviyo-Signature is the primary's (the new secret's) alone.
	fmt.Println(signer.Verify(oldSecret, body, ts, h.Get(signer.HeaderSignature)))
	fmt.Println(signer.Verify(oldSecret, body, ts, h.Get(signer.HeaderSignature), signer.WithSecrets(newSecret)))
	// Output:
	// 2
	// <nil>
	// <nil>
	// signer: invalid signature
	// <nil>
}
