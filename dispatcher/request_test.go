package dispatcher

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/signer"
	"github.com/webhookd/webhookd/subscriptions"
)

// A delivery and a test send of a webhook in the overlap of a secret
// rotation are the same kind of request (newRequest builds both): the
// same headers, the User-Agent, Klaviyo-Signature under the primary (the
// rotation's) secret alone, Webhookd-Signature with one digest per
// active secret, each verifying on its own.
func TestDeliveryAndTestSendRequestsAlike(t *testing.T) {
	const prev, next = "whsec-previous-0123456789", "whsec-rotated-9876543210"
	type seen struct {
		h    http.Header
		body []byte
	}
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Header.Clone(), body})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	f := newDeliveryFixture(t, func([]byte) int { return 0 })
	f.w.EndpointURL, f.w.Secret = srv.URL+"/hook", prev
	f.w.Rotation = &subscriptions.Rotation{ID: "r", Secret: next,
		PromoteAt: time.Now().Add(-time.Hour), RetireAt: time.Now().Add(time.Hour)}
	f.publish("ev00")
	f.round(1)
	if a := f.c.testSend(context.Background(), f.w); a.Status != http.StatusOK {
		t.Fatalf("test send: %+v, want 200", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("the endpoint got %d requests, want the delivery's and the test send's", len(got))
	}
	keys := func(h http.Header) []string {
		var ks []string
		for k := range h {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if d, ts := keys(got[0].h), keys(got[1].h); !slices.Equal(d, ts) {
		t.Errorf("delivery headers %v, test send headers %v; want the same", d, ts)
	}
	for i, name := range []string{"delivery", "test send"} {
		h, body := got[i].h, got[i].body
		if ua, ct := h.Get("User-Agent"), h.Get("Content-Type"); ua != "webhookd" || ct != "application/json" {
			t.Errorf("%s: User-Agent %q, Content-Type %q; want webhookd, application/json", name, ua, ct)
		}
		if id := h.Get(signer.HeaderWebhookID); id != f.w.ID {
			t.Errorf("%s: %s %q, want %q", name, signer.HeaderWebhookID, id, f.w.ID)
		}
		ts := h.Get(signer.HeaderTimestamp)
		if err := signer.Verify([]byte(next), body, ts, h.Get(signer.HeaderSignature)); err != nil {
			t.Errorf("%s: Klaviyo-Signature under the rotation's secret: %v", name, err)
		}
		if err := signer.Verify([]byte(prev), body, ts, h.Get(signer.HeaderSignature)); err == nil {
			t.Errorf("%s: Klaviyo-Signature verifies under the previous secret, want the primary's digest alone", name)
		}
		sigs := h.Get(signer.HeaderSignatures)
		if n := strings.Count(sigs, "v1="); n != 2 {
			t.Errorf("%s: Webhookd-Signature %q, want two digests", name, sigs)
		}
		for _, secret := range []string{prev, next} {
			if err := signer.Verify([]byte(secret), body, ts, sigs); err != nil {
				t.Errorf("%s: Webhookd-Signature under one active secret: %v", name, err)
			}
		}
	}
}
