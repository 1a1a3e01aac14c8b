package test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/signer"
)

// rotatingReceiver is an endpoint that verifies with whichever secrets it
// holds now, as a receiver mid-rotation does, answers 401 when none
// verifies, and records what each request carried.
type rotatingReceiver struct {
	URL string
	// klaviyoOnly verifies Klaviyo-Signature against every held secret
	// (Klaviyo's Python snippet, run once per secret); otherwise
	// signer.VerifyRequest reads Webhookd-Signature.
	klaviyoOnly bool
	known       map[string]string // secret -> its name, for the records

	mu      sync.Mutex
	secrets []string
	reqs    []rotationSeen
	ids     map[string]bool
}

// rotationSeen is one request: when it was signed, which secret
// Klaviyo-Signature was made with, how many digests Webhookd-Signature
// carried, and whether the receiver accepted it.
type rotationSeen struct {
	signedAt time.Time
	primary  string
	digests  int
	accepted bool
}

func newRotatingReceiver(t *testing.T, klaviyoOnly bool, known map[string]string, secrets ...string) *rotatingReceiver {
	rr := &rotatingReceiver{klaviyoOnly: klaviyoOnly, known: known, secrets: secrets, ids: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(rr.serve))
	t.Cleanup(srv.Close)
	rr.URL = srv.URL + "/hook"
	return rr
}

// hold replaces the secrets the receiver verifies with.
func (rr *rotatingReceiver) hold(secrets ...string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.secrets = secrets
}

func (rr *rotatingReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get(signer.HeaderTimestamp)
	rr.mu.Lock()
	defer rr.mu.Unlock()
	seen := rotationSeen{digests: len(strings.Split(r.Header.Get(signer.HeaderSignatures), ","))}
	seen.signedAt, _ = time.Parse(http.TimeFormat, ts)
	for s, name := range rr.known {
		if signer.Verify([]byte(s), body, ts, r.Header.Get(signer.HeaderSignature)) == nil {
			seen.primary = name
		}
	}
	for _, s := range rr.secrets {
		var err error
		if rr.klaviyoOnly {
			err = signer.Verify([]byte(s), body, ts, r.Header.Get(signer.HeaderSignature))
		} else {
			err = signer.VerifyRequest(r, []byte(s), body)
		}
		seen.accepted = seen.accepted || err == nil
	}
	rr.reqs = append(rr.reqs, seen)
	if !seen.accepted {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	for _, id := range extractIDs(body) {
		rr.ids[id] = true
	}
}

// extractIDs reads the external_ids of a delivery body.
func extractIDs(body []byte) []string {
	var ids []string
	for _, part := range strings.Split(string(body), `"external_id":"`)[1:] {
		id, _, _ := strings.Cut(part, `"`)
		ids = append(ids, id)
	}
	return ids
}

func (rr *rotatingReceiver) snapshot() ([]rotationSeen, map[string]bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	ids := make(map[string]bool, len(rr.ids))
	for k := range rr.ids {
		ids[k] = true
	}
	return append([]rotationSeen(nil), rr.reqs...), ids
}

// seenPhase reports whether some request was signed with primary and
// digests digests.
func (rr *rotatingReceiver) seenPhase(primary string, digests int) bool {
	reqs, _ := rr.snapshot()
	for _, s := range reqs {
		if s.primary == primary && s.digests == digests {
			return true
		}
	}
	return false
}

// A secret is rotated through the API while events flow to two
// receivers: one verifies Webhookd-Signature with signer.VerifyRequest
// and switches from the old secret to the new one in the middle of the
// overlap, the other follows Klaviyo's snippet (Klaviyo-Signature only),
// holds both during the window and drops the old one after it. No
// request is refused, no webhook enters its error state, every event
// arrives, and each request is signed as its time says: the old secret
// primary until promote_at, the new one after, the old one gone after
// retire_previous_at.
func TestSecretRotationWhileEventsFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.startDispatcher()
	api := e.apiServer()
	const newSecret = "rotated-secret-0123456789"
	known := map[string]string{testSecret: "old", newSecret: "new"}
	goRecv := newRotatingReceiver(t, false, known, testSecret)
	pyRecv := newRotatingReceiver(t, true, known, testSecret)
	whGo := e.create("default", goRecv.URL, topicSMS)
	whPy := e.create("default", pyRecv.URL, topicSMS)

	var ids []string
	round := 0
	publishUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			ids = append(ids, e.publish(topicSMS, fmt.Sprintf("rot%d", round), 5)...)
			round++
			time.Sleep(50 * time.Millisecond)
		}
	}
	publishUntil("deliveries before the rotation", func() bool {
		return goRecv.seenPhase("old", 1) && pyRecv.seenPhase("old", 1)
	})

	// Promote in 5 s, retire 5 s later: each phase lasts several batches.
	promote := time.Now().Add(5 * time.Second).UTC()
	retire := promote.Add(5 * time.Second)
	for _, wh := range []string{whGo.ID, whPy.ID} {
		body := fmt.Sprintf(`{"data":{"type":"webhook-secret-rotation","attributes":{"secret_key":%q,"promote_at":%q,"retire_previous_at":%q}}}`,
			newSecret, promote.Format(time.RFC3339Nano), retire.Format(time.RFC3339Nano))
		if st := call(t, "POST", api+"/webhookd/webhooks/"+wh+"/secret-rotations", body, nil); st != http.StatusCreated {
			t.Fatalf("POST secret-rotations = %d, want 201", st)
		}
	}
	pyRecv.hold(testSecret, newSecret) // the snippet receiver deploys both first

	publishUntil("both digests, the old one primary", func() bool {
		return goRecv.seenPhase("old", 2) && pyRecv.seenPhase("old", 2)
	})
	goRecv.hold(newSecret) // the Go receiver switches mid-way, before promotion
	publishUntil("both digests, the new one primary", func() bool {
		return goRecv.seenPhase("new", 2) && pyRecv.seenPhase("new", 2)
	})
	publishUntil("the new secret alone", func() bool {
		return goRecv.seenPhase("new", 1) && pyRecv.seenPhase("new", 1)
	})
	pyRecv.hold(newSecret) // after retire_previous_at the old one goes
	ids = append(ids, e.publish(topicSMS, "after", 20)...)

	for _, rr := range []*rotatingReceiver{goRecv, pyRecv} {
		waitFor(t, 60*time.Second, "every event at both receivers", func() bool {
			_, got := rr.snapshot()
			for _, id := range ids {
				if !got[id] {
					return false
				}
			}
			return true
		})
		reqs, _ := rr.snapshot()
		for _, s := range reqs {
			if !s.accepted {
				t.Errorf("receiver (klaviyoOnly %t) refused a request signed at %s by %s with %d digests", rr.klaviyoOnly, s.signedAt, s.primary, s.digests)
			}
			// Klaviyo-Timestamp has one-second resolution: requests
			// within a second of a boundary may fall either side.
			switch at := s.signedAt; {
			case at.Before(promote.Add(-time.Second)) && s.primary != "old",
				at.After(promote.Add(time.Second)) && s.primary != "new",
				at.After(retire.Add(time.Second)) && s.digests != 1,
				at.After(promote.Add(time.Second)) && at.Before(retire.Add(-time.Second)) && s.digests != 2:
				t.Errorf("request signed at %s (promote %s, retire %s): primary %s, %d digests",
					at, promote.Format(time.TimeOnly), retire.Format(time.TimeOnly), s.primary, s.digests)
			}
		}
	}
	for _, wh := range []string{whGo.ID, whPy.ID} {
		w, err := e.store.Get(t.Context(), "default", wh)
		if err != nil {
			t.Fatal(err)
		}
		if !w.Enabled || !w.State.ErrorSince.IsZero() || w.State.ConsecutiveFailures != 0 || w.State.LastStatus != 0 {
			t.Errorf("webhook %s after the rotation: enabled %t, state %+v; want enabled and never in error", wh, w.Enabled, w.State)
		}
	}
}
