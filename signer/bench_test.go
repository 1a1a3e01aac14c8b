package signer

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// benchBody returns a ~1 MB body: an envelope of 1,000 events of ~1 KB.
func benchBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"external_id":"ev%07d","topic":"event:klaviyo.sent_sms","payload":{"data":{"type":"event","id":"ev%07d","attributes":{"timestamp":1700503941,"event_properties":{"body":"%s"},"datetime":"2023-11-20 18:12:21+00:00","uuid":"58edf080-87d0-11ee-8001-895ec29a6280"}}}}`, i, i, bytes.Repeat([]byte("x"), 750))
	}
	b.WriteString(`],"meta":{"klaviyo_account_id":"abc123","klaviyo_webhook_id":"wh","timestamp":"2024-01-04T13:05:25.891446+00:00","version":"2024-07-15"}}`)
	return b.Bytes()
}

func BenchmarkSign(b *testing.B) {
	body := benchBody()
	secret := []byte("klaviyo-test-secret")
	ts := "Thu, 04 Jan 2024 18:05:25 GMT"
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(secret, body, ts)
	}
}

func BenchmarkSetHeaders(b *testing.B) {
	body := []byte(`{"data":[],"meta":{}}`)
	secret := []byte("klaviyo-test-secret")
	now := time.Date(2024, 1, 4, 18, 5, 25, 0, time.UTC)
	h := make(http.Header, 4)
	b.ReportAllocs()
	for b.Loop() {
		SetHeaders(h, "wh", secret, body, now)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := benchBody()
	secret := []byte("klaviyo-test-secret")
	ts := "Thu, 04 Jan 2024 18:05:25 GMT"
	sig := Sign(secret, body, ts)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(secret, body, ts, sig); err != nil {
			b.Fatal(err)
		}
	}
}
