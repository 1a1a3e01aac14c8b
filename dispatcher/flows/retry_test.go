package flows

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions/flows"
	"github.com/webhookd/webhookd/test/harness"
)

// A retry that cannot be written (here: no retry stream) is an error
// for every job while NATS refuses, so it is logged a few times a
// minute, not once per event.
func TestRetryWriteFailureLoggedSampled(t *testing.T) {
	js, err := jetstream.New(harness.Connect(t, harness.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	d := New(Config{}, js, nil, zerolog.New(&buf))
	j := job{l: &live{flow: flows.Flow{ID: "f"}, action: flows.Action{ID: "a"}}, raw: []byte(`{}`), subject: "s", seq: 1, first: time.Now()}
	const jobs = 10 // each waits for the no-responders retries (0.5 s)
	for i := range jobs {
		j.seq = uint64(i + 1)
		if err := d.settle(context.Background(), j, next{again: true, at: time.Now(), attempt: 2}); err == nil {
			t.Fatal("a retry was written without a retry stream")
		}
	}
	lines := strings.Count(buf.String(), "cannot write a retry")
	if lines < 1 || lines > 5 {
		t.Errorf("%d failed retry writes logged %d times, want 1 to 5:\n%s", jobs, lines, buf.String())
	}
}
