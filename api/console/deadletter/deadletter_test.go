package deadletter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/api/console/deadletter"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/test/harness"
)

// publish puts one dead letter on the stream the way the dispatcher
// does: the original body, the reason headers.
func publish(t *testing.T, js jetstream.JetStream, code, subject string, body []byte) {
	t.Helper()
	m := nats.NewMsg("webhookd.deadletter." + code)
	m.Data = body
	m.Header.Set(dispatcher.HeaderCode, code)
	m.Header.Set(dispatcher.HeaderReason, "reason for "+code)
	m.Header.Set(dispatcher.HeaderSubject, subject)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLetters(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	r := &deadletter.Reader{JS: js, Excerpt: 8}
	// No stream yet: nothing, not an error.
	if got, err := r.DeadLetters(ctx, "", 10); err != nil || len(got.Latest) != 0 {
		t.Fatalf("DeadLetters before the stream exists = %+v, %v; want none", got, err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS_DEADLETTER",
		Subjects: []string{"webhookd.deadletter.>"}, MaxAge: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, "not_json", "event:klaviyo.sent_sms.acctA", []byte(`{"data": nope, long enough to cut}`))
	publish(t, js, "no_id", "event:klaviyo.sent_sms", []byte(`{"data":{}}`)) // bare topic: the default account
	publish(t, js, "not_utf8", "event:klaviyo.sent_sms.acctA", []byte("ab\xffcdefghij"))
	publish(t, js, "bad_subject", "event", []byte(`{}`))
	publish(t, js, "not_json", "event:klaviyo.sent_sms.acctB", []byte(`x`))

	got, err := r.DeadLetters(ctx, "acctA", 10)
	if err != nil {
		t.Fatal(err)
	}
	var codes, excerpts []string
	for _, e := range got.Latest {
		codes = append(codes, e.Code)
		excerpts = append(excerpts, e.Excerpt)
		if e.Account != "acctA" || !strings.HasPrefix(e.Reason, "reason for ") {
			t.Errorf("entry %+v: want account acctA with its reason", e)
		}
	}
	if diff := cmp.Diff([]string{"not_utf8", "not_json"}, codes); diff != "" {
		t.Errorf("acctA's latest codes, newest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ab\uFFFDcdefg…", `{"data":…`}, excerpts); diff != "" {
		t.Errorf("excerpts: cut at 8 bytes, valid UTF-8 (-want +got):\n%s", diff)
	}
	wantCounts := []console.ReasonCount{{Code: "not_json", Count: 1}, {Code: "not_utf8", Count: 1}}
	if diff := cmp.Diff(wantCounts, got.Counts); diff != "" || !got.CountsScanned || got.Scanned != 5 || got.Total != 5 || got.Kept != "7 days" {
		t.Errorf("acctA's counts (-want +got):\n%s\nscanned %v %d of %d, kept %q", diff, got.CountsScanned, got.Scanned, got.Total, got.Kept)
	}

	def, err := r.DeadLetters(ctx, "default", 10)
	if err != nil || len(def.Latest) != 1 || def.Latest[0].Code != "no_id" {
		t.Errorf("default account's dead letters = %+v, %v; want the bare-topic no_id", def.Latest, err)
	}

	all, err := r.DeadLetters(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	wantAll := []console.ReasonCount{{Code: "not_json", Count: 2}, {Code: "bad_subject", Count: 1}, {Code: "no_id", Count: 1}, {Code: "not_utf8", Count: 1}}
	if diff := cmp.Diff(wantAll, all.Counts); diff != "" || all.CountsScanned {
		t.Errorf("operator's counts are exact over the stream (-want +got):\n%s", diff)
	}
	if len(all.Latest) != 2 || all.Latest[0].Subject != "event:klaviyo.sent_sms.acctB" || all.Latest[1].Code != "bad_subject" {
		t.Errorf("operator's latest 2 = %+v, want acctB's not_json then bad_subject", all.Latest)
	}
}
