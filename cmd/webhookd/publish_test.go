package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/test/harness"
)

// publishEnv starts a NATS server with webhookd's event stream.
func publishEnv(t *testing.T) (url string, js jetstream.JetStream) {
	t.Helper()
	srv := harness.NATS(t)
	js, err := jetstream.New(harness.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "EVENTS", Subjects: []string{"event:klaviyo.>"}, Duplicates: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
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

// A tiny --max-pending makes the publisher wait for acknowledgements
// instead of failing publishes; every generated event lands on the
// account's subject.
func TestPublishGenerateWaitsForAcks(t *testing.T) {
	url, js := publishEnv(t)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"publish", "--nats-url", url,
		"--topic", "event:klaviyo.sent_sms", "--account", "acme",
		"--generate", "--count", "20000", "--max-pending", "8"}, nil, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("publish: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "published 20000 of 20000 events to event:klaviyo.sent_sms.acme") {
		t.Errorf("report = %q", out.String())
	}
	if n := streamCount(t, js, "event:klaviyo.sent_sms.acme"); n != 20000 {
		t.Errorf("stream holds %d events on the account subject, want 20000", n)
	}
}

// Lines from a file are published as they are (an invalid one too:
// webhookd dead-letters it); with --msg-id-from data.id, publishing the same
// file again is dropped by JetStream's duplicate window.
func TestPublishFileWithMsgIDs(t *testing.T) {
	url, js := publishEnv(t)
	in := `{"data":{"type":"event","id":"e1"}}` + "\n\n" +
		`{"data":{"type":"event","id":"e2"}}` + "\n" +
		`not json` + "\n"
	args := []string{"publish", "--nats-url", url, "--topic", "event:klaviyo.clicked_sms", "--msg-id-from", "data.id"}
	for i, want := range []string{"published 3 of 3", "2 duplicates dropped"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, nil, strings.NewReader(in), &out, &errOut); err != nil {
			t.Fatalf("publish #%d: %v\n%s", i+1, err, errOut.String())
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("publish #%d report = %q, want it to say %q", i+1, out.String(), want)
		}
	}
	// e1, e2 once each; the line without an id twice (no message id).
	if n := streamCount(t, js, "event:klaviyo.clicked_sms"); n != 4 {
		t.Errorf("stream holds %d events, want 4", n)
	}
}

// When acknowledgements take longer than PublishAsync's stall time, the
// publisher waits for room instead of failing publishes. A core NATS
// responder stands in for a slow stream: it acknowledges after 300ms.
func TestPublishWaitsOnSlowAcks(t *testing.T) {
	srv := harness.NATS(t)
	nc := harness.Connect(t, srv)
	var seq atomic.Int64
	sub, err := nc.Subscribe("event:klaviyo.>", func(m *nats.Msg) {
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
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"publish", "--nats-url", srv.ClientURL(),
		"--topic", "event:klaviyo.sent_sms", "--generate", "--count", "40", "--max-pending", "4"}, nil, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("publish: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "published 40 of 40") {
		t.Errorf("report = %q, want all 40 published", out.String())
	}
}
