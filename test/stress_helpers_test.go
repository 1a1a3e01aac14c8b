package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Helpers of the issue-13 tests: a webhookd process's API and metrics,
// its peak memory, padded and poisonous events, dead letters by code.

// apiURL is the base URL of p's Webhooks API.
func (p *proc) apiURL(t *testing.T) string {
	t.Helper()
	return "http://" + p.logLine(t, "webhookd serving")["addr"].(string)
}

// metricsURL is p's /metrics URL (p runs with --metrics-addr).
func (p *proc) metricsURL(t *testing.T) string {
	t.Helper()
	return "http://" + p.logLine(t, "metrics and pprof serving")["addr"].(string) + "/metrics"
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the peak RSS of %d: %v", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// deliveryState returns the attributes of a webhook's delivery state.
func deliveryState(t *testing.T, api, id string) map[string]any {
	t.Helper()
	var doc struct {
		Data struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if st := call(t, "GET", api+"/webhookd/webhooks/"+id+"/delivery-state", "", &doc); st != 200 {
		t.Fatalf("GET delivery-state of %s: status %d", id, st)
	}
	return doc.Data.Attributes
}

// paddedBody is an event of about size bytes with data.id id (id needs
// no JSON escaping).
func paddedBody(id string, size int) []byte {
	b := make([]byte, 0, size+64)
	b = append(b, `{"data":{"type":"event","id":"`...)
	b = append(b, id...)
	b = append(b, `","attributes":{"pad":"`...)
	b = append(b, bytes.Repeat([]byte{'p'}, max(size-len(b)-4, 0))...)
	return append(b, `"}}}`...)
}

// publishBodies publishes one event per id with body(id) as its payload,
// in windows of acknowledgements like publish, and returns the ids.
func (e *env) publishBodies(subject string, ids []string, body func(id string) []byte) []string {
	e.t.Helper()
	const window = 64
	futures := make([]jetstream.PubAckFuture, 0, window)
	for i, id := range ids {
		f, err := e.js.PublishAsync(subject, body(id), jetstream.WithMsgID(id))
		if err != nil {
			e.t.Fatalf("PublishAsync: %v", err)
		}
		futures = append(futures, f)
		if len(futures) == window || i == len(ids)-1 {
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					e.t.Fatalf("publish: %v", err)
				case <-time.After(30 * time.Second):
					e.t.Fatal("publish: no ack")
				}
			}
			futures = futures[:0]
		}
	}
	return ids
}

// idRange returns prefix-0 … prefix-(n-1).
func idRange(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + "-" + strconv.Itoa(i)
	}
	return ids
}

// deadLetters returns every message of the dead-letter stream.
func (e *env) deadLetters() []deadLetter {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, "EVENTS_DEADLETTER")
	if err != nil {
		return nil
	}
	var out []deadLetter
	last := st.CachedInfo().State.LastSeq
	for seq := st.CachedInfo().State.FirstSeq; seq > 0 && seq <= last; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, deadLetter{
			MsgID: m.Header.Get("Webhookd-Msg-Id"), Code: m.Header.Get("Webhookd-Reason-Code"),
			Subject: m.Subject, Data: string(m.Data),
		})
	}
	return out
}

// deadLetter is one message of the dead-letter stream: the producer's
// Nats-Msg-Id, the reason code, the dead-letter subject, the event.
type deadLetter struct{ MsgID, Code, Subject, Data string }

// waitDeadLetter waits until an event with Nats-Msg-Id msgID (or, when
// msgID is empty, with payload data) is dead-lettered, and returns it.
func (e *env) waitDeadLetter(timeout time.Duration, msgID, data string) (deadLetter, bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, dl := range e.deadLetters() {
			if (msgID != "" && dl.MsgID == msgID) || (msgID == "" && dl.Data == data) {
				return dl, true
			}
		}
		if time.Now().After(deadline) {
			return deadLetter{}, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// perWebhook records, per Klaviyo-Webhook-Id, the external ids a sink
// accepted (its Respond answered 200).
type perWebhook struct {
	mu  sync.Mutex
	got map[string]map[string]int
}

func (p *perWebhook) add(r *Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got == nil {
		p.got = map[string]map[string]int{}
	}
	m := p.got[r.WebhookID]
	if m == nil {
		m = map[string]int{}
		p.got[r.WebhookID] = m
	}
	for _, ev := range r.Events {
		m[ev.ExternalID]++
	}
}

// with counts the webhooks that received id.
func (p *perWebhook) with(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.got {
		if m[id] > 0 {
			n++
		}
	}
	return n
}

// poll is waitFor that reports instead of failing the test.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
