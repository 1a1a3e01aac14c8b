package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// Helpers for the tests of partitioned consumption's parts (fans, hooks,
// retry copies, index syncs). They build only on what the package had
// before the review fixes of b08ce14, so the tests also compile, and
// fail, on the code before them.

// pfixSubject is where pfix events are published (account acct1).
const pfixSubject = "event:klaviyo.sent_sms.acct1"

// pfixEnv is a private JetStream with partitioned streams (one
// partition, so every event is on part_0), a receiver and a webhook wh1
// pointing at it.
type pfixEnv struct {
	t    *testing.T
	cfg  Config
	js   jetstream.JetStream
	part jetstream.Consumer
	rc   *receiver
	w    subscriptions.Webhook
}

func newPfixEnv(t *testing.T, cfg Config) *pfixEnv {
	t.Helper()
	cfg.Partitions = 1
	cfg.AllowInsecureEndpoints = true
	cfg = cfg.withDefaults()
	js, _ := testJS(t, cfg)
	part, err := js.Consumer(context.Background(), cfg.Stream, partitionConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{refuse: func([]byte) int { return 0 }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	w := subscriptions.Webhook{
		ID: "wh1", AccountID: "acct1", EndpointURL: srv.URL, Secret: "s", Enabled: true,
		Topics: []string{"event:klaviyo.sent_sms"}, ActiveSince: time.Now().Add(-time.Hour),
	}
	return &pfixEnv{t: t, cfg: cfg, js: js, part: part, rc: rc, w: w}
}

// event is the body of an event with external id id.
func pfixEvent(id string) []byte {
	return fmt.Appendf(nil, `{"data":{"type":"event","id":%q,"attributes":{"n":1}}}`, id)
}

// publish publishes event id with the given headers and options.
func (e *pfixEnv) publish(id string, hdr nats.Header, opts ...jetstream.PublishOpt) {
	e.t.Helper()
	m := nats.NewMsg(pfixSubject)
	m.Data = pfixEvent(id)
	for k, v := range hdr {
		m.Header[k] = v
	}
	if _, err := e.js.PublishMsg(context.Background(), m, opts...); err != nil {
		e.t.Fatalf("publishing %s: %v", id, err)
	}
}

// take fetches n events from the partition consumer, failing the test
// if they do not come within 5 s.
func (e *pfixEnv) take(n int) []jetstream.Msg {
	e.t.Helper()
	var msgs []jetstream.Msg
	deadline := time.Now().Add(5 * time.Second)
	for len(msgs) < n && time.Now().Before(deadline) {
		more, err := fetch(context.Background(), e.part, n-len(msgs), 0, 100*time.Millisecond)
		if err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, more...)
	}
	if len(msgs) != n {
		e.t.Fatalf("fetched %d partition events, want %d", len(msgs), n)
	}
	return msgs
}

// retryCopies returns what the retry stream holds, in order.
func (e *pfixEnv) retryCopies() []*jetstream.RawStreamMsg {
	e.t.Helper()
	return streamMsgs(e.t, e.js, e.cfg.retryStream())
}

// retryEvent is one event found in the retry stream: the webhook whose
// subject holds it, and what its bundle keeps of it.
type retryEvent struct {
	webhook    string
	msgSubject string // the retry message's subject
	bundled
}

// retryEvents decodes every bundle the retry stream holds.
func (e *pfixEnv) retryEvents() []retryEvent {
	e.t.Helper()
	var out []retryEvent
	for _, m := range e.retryCopies() {
		if m.Header.Get(headerBundle) != bundleFormat {
			e.t.Fatalf("retry message on %s is not a bundle (headers %v)", m.Subject, m.Header)
		}
		evs, err := decodeBundle(m.Data)
		if err != nil {
			e.t.Fatalf("retry message on %s: %v", m.Subject, err)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(m.Subject, retryPrefix+"."), ".")
		if want := bundleSubject(id, len(evs)); m.Subject != want {
			e.t.Errorf("bundle of %d events on %s, want %s", len(evs), m.Subject, want)
		}
		for _, ev := range evs {
			out = append(out, retryEvent{webhook: id, msgSubject: m.Subject, bundled: ev})
		}
	}
	return out
}

// streamMsgs reads every message stream holds, by sequence.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// newRetrierT is a retrier on js whose settling loop runs until the test
// ends. Register it before anything that may still divert (hooks), so
// that their cleanup runs first.
func newRetrierT(t *testing.T, cfg Config, js jetstream.JetStream, flags retryFlagger) *retrier {
	t.Helper()
	rt := newRetrier(cfg.withDefaults(), js, flags, zerolog.Nop())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.run()
	}()
	t.Cleanup(func() {
		rt.close()
		<-done
	})
	return rt
}

// flagRecorder is a retryFlagger that records the flags set, or fails
// with err.
type flagRecorder struct {
	err error
	mu  sync.Mutex
	set map[string]bool
}

func (f *flagRecorder) SetRetrying(_ context.Context, id string, on bool) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.set == nil {
		f.set = make(map[string]bool)
	}
	changed := f.set[id] != on
	f.set[id] = on
	return changed, nil
}

// lookup is a webhookLookup over fixed webhooks.
type lookup map[string]*subscriptions.Webhook

func (l lookup) Get(id string) (*subscriptions.Webhook, bool) {
	w, ok := l[id]
	return w, ok
}

// spyMsg records how a message is settled. It wraps a real message, or,
// with Msg nil, stands for one with the given metadata (an error if nil)
// and headers.
type spyMsg struct {
	jetstream.Msg
	meta *jetstream.MsgMetadata
	hdr  nats.Header

	mu     sync.Mutex
	acks   int             // Ack, DoubleAck, Term, TermWithReason
	naks   []time.Duration // Nak (0) and NakWithDelay
	terms  []string        // TermWithReason's reasons
	closed chan struct{}   // closed at the first settlement
	once   sync.Once
}

func newSpy(m jetstream.Msg) *spyMsg { return &spyMsg{Msg: m, closed: make(chan struct{})} }

func (s *spyMsg) settled() { s.once.Do(func() { close(s.closed) }) }

func (s *spyMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if s.Msg != nil {
		return s.Msg.Metadata()
	}
	if s.meta == nil {
		return nil, errors.New("spyMsg: no metadata")
	}
	return s.meta, nil
}

func (s *spyMsg) Data() []byte {
	if s.Msg != nil {
		return s.Msg.Data()
	}
	return pfixEvent("spy")
}

func (s *spyMsg) Headers() nats.Header {
	if s.Msg != nil {
		return s.Msg.Headers()
	}
	return s.hdr
}

func (s *spyMsg) Subject() string {
	if s.Msg != nil {
		return s.Msg.Subject()
	}
	return pfixSubject
}

func (s *spyMsg) Reply() string { return "" }

func (s *spyMsg) InProgress() error {
	if s.Msg != nil {
		return s.Msg.InProgress()
	}
	return nil
}

func (s *spyMsg) Ack() error {
	s.mu.Lock()
	s.acks++
	s.mu.Unlock()
	s.settled()
	if s.Msg != nil {
		return s.Msg.Ack()
	}
	return nil
}

func (s *spyMsg) DoubleAck(context.Context) error { return s.Ack() }
func (s *spyMsg) Term() error                     { return s.TermWithReason("") }

func (s *spyMsg) TermWithReason(reason string) error {
	s.mu.Lock()
	s.acks++
	s.terms = append(s.terms, reason)
	s.mu.Unlock()
	s.settled()
	if s.Msg != nil {
		return s.Msg.TermWithReason(reason)
	}
	return nil
}

func (s *spyMsg) Nak() error { return s.NakWithDelay(0) }

func (s *spyMsg) NakWithDelay(d time.Duration) error {
	s.mu.Lock()
	s.naks = append(s.naks, d)
	s.mu.Unlock()
	s.settled()
	if s.Msg != nil {
		return s.Msg.NakWithDelay(d)
	}
	return nil
}

// counts returns the acks and the naks' delays so far.
func (s *spyMsg) counts() (int, []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks, append([]time.Duration(nil), s.naks...)
}

// testFan is a fan of m over n shares for webhook ids, whose release is
// counted.
type testFan struct {
	*fan
	spy      *spyMsg
	mu       sync.Mutex
	releases int
	released chan struct{}
}

func newTestFan(spy *spyMsg, n int) *testFan {
	tf := &testFan{spy: spy, released: make(chan struct{})}
	tf.fan = &fan{msg: spy, subject: unpartition(spy.Subject()), left: n, release: func() {
		tf.mu.Lock()
		defer tf.mu.Unlock()
		tf.releases++
		if tf.releases == 1 {
			close(tf.released)
		}
	}}
	return tf
}

func (tf *testFan) share(webhook string, rt *retrier) *share {
	return &share{f: tf.fan, webhook: webhook, retry: rt}
}

func (tf *testFan) releaseCount() int {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	return tf.releases
}

// waitReleased waits for the fan to be settled as a whole.
func (tf *testFan) waitReleased(tb testing.TB) {
	tb.Helper()
	select {
	case <-tf.released:
	case <-time.After(5 * time.Second):
		tb.Fatal("the fan was not settled within 5s")
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
