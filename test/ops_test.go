package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/signer"
	"github.com/webhookd/webhookd/test/harness"
)

const opsSecret = "ops-secret-0123456789"

// opsEvent is an operator event as received.
type opsEvent struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	AccountID  string          `json:"account_id"`
	WebhookID  string          `json:"webhook_id"`
	OccurredAt string          `json:"occurred_at"`
	ErrorSince *string         `json:"error_since"`
	Reason     string          `json:"reason"`
	Replay     json.RawMessage `json:"replay"`
	subject    string
}

// opsLog collects operator events from NATS or the operator endpoint.
type opsLog struct {
	mu   sync.Mutex
	evs  []opsEvent
	last time.Time
}

func (l *opsLog) add(t *testing.T, subject string, data []byte) {
	var ev opsEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Errorf("operator event %s is not JSON: %v", subject, err)
		return
	}
	ev.subject = subject
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.last = time.Now()
	l.mu.Unlock()
}

// count is how many events of typ for webhook id arrived.
func (l *opsLog) count(id, typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ev := range l.evs {
		if ev.WebhookID == id && ev.Type == typ {
			n++
		}
	}
	return n
}

func (l *opsLog) quietFor(d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.last) > d
}

func (l *opsLog) all() []opsEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]opsEvent(nil), l.evs...)
}

// Every transition yields exactly one operator event, with two replicas
// delivering, on NATS (webhookd.ops.<account>.<type>) and at the
// operator endpoint (signed with --ops-secret): failing, error_50,
// error_90, disabled and, after a re-enable and a replay,
// replay_finished for one webhook; failing and recovered for another.
func TestOpsEventsOncePerTransition(t *testing.T) {
	t.Parallel()
	var onNATS, atURL opsLog
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signer.Verify([]byte(opsSecret), body, r.Header.Get("Klaviyo-Timestamp"), r.Header.Get("Klaviyo-Signature")); err != nil {
			t.Errorf("operator POST signature: %v", err)
		}
		atURL.add(t, r.Header.Get("Webhookd-Ops-Subject"), body)
	}))
	t.Cleanup(recv.Close)
	e := newEnv(t, func(c *dispatcher.Config) {
		c.DisableAfter = 6 * time.Second
		c.BackoffBase = 100 * time.Millisecond
		c.BackoffMax = 200 * time.Millisecond
		c.OpsURL, c.OpsSecret = recv.URL+"/ops", opsSecret
	})
	nc := harness.Connect(t, e.nats)
	sub, err := nc.Subscribe(dispatcher.OpsSubjectPrefix+".>", func(m *nats.Msg) { onNATS.add(t, m.Subject, m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d := e.startDispatcher()
	e.startDispatcher()

	const account = "acme"
	subject := topicSMS + "." + account
	var healthyA atomic.Bool
	sinkA := NewSink(t, testSecret)
	sinkA.Respond = func(int64, *Request) int {
		if healthyA.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	sinkB := NewSink(t, testSecret)
	sinkB.Respond = func(n int64, _ *Request) int {
		if n <= 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	}
	a := e.create(account, sinkA.URL, topicSMS)
	b := e.create(account, sinkB.URL, topicSMS)
	since := time.Now()
	ids := e.publish(subject, "ops", 20)

	waitDelivered(t, sinkB, ids, 30*time.Second)
	waitFor(t, 30*time.Second, "webhook A disabled", func() bool { return !e.get(a).Enabled })
	healthyA.Store(true)
	e.setEnabled(a, true)
	e.waitConsumer(a.ID, true)
	base := e.apiServerFor(d, account)
	rid := startReplay(t, base, a.ID, since)
	waitFor(t, 30*time.Second, "the replay done", func() bool { return replayState(t, base, a.ID, rid)["state"] == "done" })

	want := map[string][]string{
		a.ID: {"failing", "error_50", "error_90", "disabled", "replay_finished"},
		b.ID: {"failing", "recovered"},
	}
	for name, l := range map[string]*opsLog{"NATS": &onNATS, "--ops-url": &atURL} {
		waitFor(t, 30*time.Second, "every operator event on "+name, func() bool {
			for id, types := range want {
				for _, typ := range types {
					if l.count(id, typ) == 0 {
						return false
					}
				}
			}
			return l.quietFor(time.Second)
		})
		for id, types := range want {
			for _, typ := range types {
				if n := l.count(id, typ); n != 1 {
					t.Errorf("%s: %d %s events for webhook %s, want exactly 1", name, n, typ, id)
				}
			}
		}
		if n := len(l.all()); n != 7 {
			t.Errorf("%s: %d operator events, want 7: %+v", name, n, l.all())
		}
		for _, ev := range l.all() {
			if ev.subject != dispatcher.OpsSubjectPrefix+"."+account+"."+ev.Type || ev.AccountID != account || ev.ID == "" || ev.OccurredAt == "" {
				t.Errorf("%s: event %+v, want subject webhookd.ops.%s.%s, the account, an id and a time", name, ev, account, ev.Type)
			}
			switch ev.Type {
			case "failing", "error_50", "error_90":
				if ev.ErrorSince == nil {
					t.Errorf("%s: %s event without error_since", name, ev.Type)
				}
			case "disabled":
				if !strings.Contains(ev.Reason, "failing since") {
					t.Errorf("%s: disabled event reason %q, want the disabled_reason", name, ev.Reason)
				}
			case "replay_finished":
				var r struct {
					ID, State string
				}
				if err := json.Unmarshal(ev.Replay, &r); err != nil || r.ID != rid || r.State != "done" {
					t.Errorf("%s: replay_finished replay %s, want id %s state done", name, ev.Replay, rid)
				}
			}
		}
	}
}
