package test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/signer"
)

// Request is one request a Sink received, decoded.
type Request struct {
	At        time.Time
	WebhookID string // Klaviyo-Webhook-Id header
	Meta      struct {
		AccountID string `json:"klaviyo_account_id"`
		WebhookID string `json:"klaviyo_webhook_id"`
		Timestamp string `json:"timestamp"`
		Version   string `json:"version"`
	}
	Events []SinkEvent
	Status int // what the sink answered
	// Body is the raw body, for Respond only: it is dropped once Respond
	// returns, so large deliveries are not kept.
	Body []byte
}

// SinkEvent is one item of a request's data array.
type SinkEvent struct {
	ExternalID string          `json:"external_id"`
	Topic      string          `json:"topic"`
	Payload    json.RawMessage `json:"payload"`
}

// Sink is a real HTTP endpoint that verifies every request's signature
// with its secret, checks that the webhook id header equals
// meta.klaviyo_webhook_id, records what it received and answers with what
// Respond returns (200 when nil). Problems are reported with tb.Errorf.
type Sink struct {
	URL    string
	Secret string

	tb  testing.TB
	srv *httptest.Server

	// Respond decides the answer to the n-th request (from 1); it may
	// sleep to hold the request open. Set it before traffic starts.
	Respond func(n int64, r *Request) int

	n        atomic.Int64
	inFlight gauge
	// cut counts requests whose body ended early: the sender went away
	// mid-request (a replica killed by a fault test). Nothing was
	// answered, so the sender's events are not delivered by it.
	cut atomic.Int64

	mu   sync.Mutex
	reqs []*Request
	seen map[string]int // external_id -> times received in a 2xx-answered request
}

// NewSink starts a sink on a loopback port, closed when the test ends.
func NewSink(tb testing.TB, secret string) *Sink {
	tb.Helper()
	s := &Sink{Secret: secret, tb: tb, seen: make(map[string]int)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/hook"
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	defer s.inFlight.enter()()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// A crashed sender cuts its body short; that is the fault under
		// test, not a malformed delivery (those are read whole and fail
		// the checks below).
		s.cut.Add(1)
		s.tb.Logf("sink: request cut short (its sender went away?): %v", err)
		return
	}
	ts, sig := r.Header.Get("Klaviyo-Timestamp"), r.Header.Get("Klaviyo-Signature")
	if err := signer.Verify([]byte(s.Secret), body, ts, sig); err != nil {
		s.tb.Errorf("sink: signature does not verify: %v", err)
	}
	req := &Request{At: time.Now(), WebhookID: r.Header.Get("Klaviyo-Webhook-Id"), Body: body}
	var env struct {
		Data []SinkEvent     `json:"data"`
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		s.tb.Errorf("sink: body is not the data/meta envelope: %v", err)
	}
	_ = json.Unmarshal(env.Meta, &req.Meta)
	req.Events = env.Data
	if req.WebhookID == "" || req.WebhookID != req.Meta.WebhookID {
		s.tb.Errorf("sink: Klaviyo-Webhook-Id %q != meta.klaviyo_webhook_id %q", req.WebhookID, req.Meta.WebhookID)
	}
	status := http.StatusOK
	if s.Respond != nil {
		if st := s.Respond(s.n.Add(1), req); st != 0 {
			status = st
		}
	}
	req.Status, req.Body = status, nil
	// A sender that gave up (its deadline passed while Respond held the
	// request) never sees this answer, so its events are not delivered.
	gone := r.Context().Err() != nil
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	if status >= 200 && status <= 202 && !gone {
		for _, e := range req.Events {
			s.seen[e.ExternalID]++
		}
	}
	s.mu.Unlock()
	if status == ResetConnection {
		reset(w)
		return
	}
	w.WriteHeader(status)
}

// ResetConnection, returned by Respond, makes the sink drop the
// connection with a TCP reset instead of answering.
const ResetConnection = -1

// reset closes the request's connection with SO_LINGER 0 (a TCP RST).
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// Requests returns a copy of the requests received so far.
func (s *Sink) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.reqs...)
}

// Delivered returns external_id -> number of times it arrived in a
// request the sink accepted.
func (s *Sink) Delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

// Peak is the highest number of requests the sink held at once.
func (s *Sink) Peak() int { return int(s.inFlight.peak.Load()) }

// gauge counts requests in progress and keeps the highest count seen.
type gauge struct{ cur, peak atomic.Int64 }

// enter counts one more request; call the returned func when it ends.
func (g *gauge) enter() (leave func()) {
	c := g.cur.Add(1)
	for p := g.peak.Load(); c > p && !g.peak.CompareAndSwap(p, c); p = g.peak.Load() {
	}
	return func() { g.cur.Add(-1) }
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newFailingSink is a sink that answers failStatus until healthy is set,
// then 200.
func newFailingSink(tb testing.TB, failStatus int) (*Sink, *atomic.Bool) {
	tb.Helper()
	s := NewSink(tb, testSecret)
	healthy := new(atomic.Bool)
	s.Respond = func(int64, *Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return failStatus
	}
	return s, healthy
}
