package publish

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/test/harness"
)

// publishEnv starts a NATS server with webhookd's event stream.
func publishEnv(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := harness.Connect(t, harness.NATS(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "EVENTS", Subjects: []string{dispatcher.DefaultSubject}, Duplicates: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func streamCount(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// A tiny MaxPending makes the publisher wait for acknowledgements
// instead of failing publishes; every generated event lands on the
// subject.
func TestGenerateWaitsForAcks(t *testing.T) {
	nc, js := publishEnv(t)
	rep, err := Run(context.Background(), nc, Config{
		Subject: "event:klaviyo.sent_sms.acme", Events: Generate(20000, 1024, MsgIDDataID), MaxPending: 8,
	})
	if err != nil {
		t.Fatalf("Run() = %v (%s)", err, rep)
	}
	if !strings.Contains(rep.String(), "published 20000 of 20000 events to event:klaviyo.sent_sms.acme") || rep.Duplicates != 0 {
		t.Errorf("report = %q, want all 20000 published and no duplicates", rep)
	}
	if n := streamCount(t, js, "event:klaviyo.sent_sms.acme"); n != 20000 {
		t.Errorf("stream holds %d events on the account subject, want 20000", n)
	}
}

// When acknowledgements take longer than PublishAsync's stall time, the
// publisher waits for room instead of failing publishes. A core NATS
// responder stands in for a slow stream: it acknowledges after 300ms.
func TestWaitsOnSlowAcks(t *testing.T) {
	srv := harness.NATS(t)
	nc := harness.Connect(t, srv)
	var seq atomic.Int64
	sub, err := nc.Subscribe(dispatcher.DefaultSubject, func(m *nats.Msg) {
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = m.Respond(fmt.Appendf(nil, `{"stream":"EVENTS","seq":%d}`, seq.Add(1)))
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), nc, Config{
		Subject: "event:klaviyo.sent_sms", Events: Generate(40, 1024, MsgIDNone), MaxPending: 4,
	})
	if err != nil {
		t.Fatalf("Run() = %v (%s)", err, rep)
	}
	if rep.Acked != 40 || rep.Sent != 40 {
		t.Errorf("report = %q, want all 40 published", rep)
	}
}
