package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/dispatcher"
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
		Name: "EVENTS", Subjects: []string{dispatcher.DefaultSubject}, Duplicates: time.Minute,
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

// Lines from a file are published as they are (an invalid one too:
// webhookd dead-letters it); by default (--msg-id-from data.id) publishing
// the same file again is dropped by JetStream's duplicate window, and
// with --msg-id-from none it is not.
func TestPublishFileWithMsgIDs(t *testing.T) {
	url, js := publishEnv(t)
	in := `{"data":{"type":"event","id":"e1"}}` + "\n\n" +
		`{"data":{"type":"event","id":"e2"}}` + "\n" +
		`not json` + "\n"
	args := []string{"publish", "--nats-url", url, "--topic", "event:klaviyo.clicked_sms"}
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
	none := []string{"publish", "--nats-url", url, "--topic", "event:klaviyo.opened_email", "--msg-id-from", "none"}
	for range 2 {
		if err := run(context.Background(), none, nil, strings.NewReader(in), io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamCount(t, js, "event:klaviyo.opened_email"); n != 6 {
		t.Errorf("--msg-id-from none: stream holds %d events, want 6 (nothing deduplicated)", n)
	}
}

// --topic is a topic id (dispatcher.CheckTopic), and the other flags are
// checked before anything is published; errors name the flag.
func TestPublishFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the error
	}{
		{nil, "--topic"},
		{[]string{"--topic", "event:klaviyo.*"}, "--topic"},
		{[]string{"--topic", "event:klaviyo.sent_sms.acme"}, "--topic"},
		{[]string{"--topic", "event:klaviyo.sent_sms.acme.extra"}, "--topic"},
		{[]string{"--topic", "event:klaviyo"}, "--topic"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--account", "a.b"}, "--account"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--generate"}, "--count"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--count", "3"}, "--count"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--generate", "--count", "1", "--file", "x"}, "--file"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--rate", "-1"}, "--rate"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--msg-id-from", "id"}, "--msg-id-from"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--max-pending", "0"}, "--max-pending"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--ack-timeout", "0s"}, "--ack-timeout"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--event-bytes", "-1"}, "--event-bytes"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "--file", "/nonexistent/events"}, "--file"},
		{[]string{"--topic", "event:klaviyo.sent_sms", "extra"}, "extra"},
	} {
		err := run(context.Background(), append([]string{"publish", "--nats-url", "nats://127.0.0.1:1"}, tt.args...), nil, strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("publish %q = %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}
