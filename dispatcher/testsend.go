package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// Test sends (README, "Test send"). One synthetic event, topic
// TestTopic, external id "test-<uuid>", its payload a Get Event document
// with "test": true, in the usual envelope, signed with the webhook's
// secret and sent through the same endpoint validation and dial guard as
// deliveries. It takes one of the webhook's request slots (so the
// in-flight cap holds), whatever its error state: it does not wait for
// the backoff, and its outcome neither enters nor clears the error state.

// TestTopic is the topic of a test send's event.
const TestTopic = "webhookd.test"

const (
	// testSlotWait is how long a test send waits for a free request
	// slot before answering ErrNoSlot.
	testSlotWait = 2 * time.Second
)

// TestSend sends one test event to w now and returns its attempt, which
// is also recorded in the attempt log with trigger test.
func (d *Dispatcher) TestSend(ctx context.Context, w subscriptions.Webhook) (activity.Attempt, error) {
	x := d.ext
	if x == nil {
		return activity.Attempt{}, ErrNotAvailable
	}
	holder := "test-" + uuid.NewString()
	deadline := time.Now().Add(testSlotWait)
	for {
		ok, err := x.store.AcquireFreeSlot(ctx, w.ID, holder, d.cfg.MaxInFlight, d.cfg.Lease)
		if err != nil {
			return activity.Attempt{}, err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return activity.Attempt{}, ErrNoSlot
		}
		if !sleep(ctx, jitter(subscriptions.SlotPollInterval)) {
			return activity.Attempt{}, ctx.Err()
		}
	}
	defer func() { _ = x.courier.slots.ReleaseSlot(context.WithoutCancel(ctx), w.ID, holder) }()
	a := x.courier.testSend(ctx, w)
	d.cfg.Activity.Record(a)
	x.stats.TestSends.Add(1)
	return a, nil
}

// testEvent is the synthetic event of a test send.
func testEvent(now time.Time) batcher.Event {
	id := "test-" + uuid.NewString()
	payload := fmt.Appendf(nil, `{"data":{"type":"event","id":%q,"attributes":{"test":true,`+
		`"timestamp":%d,"datetime":%q,"event_properties":{"note":"webhookd test send: not a real event"}}}}`,
		id, now.Unix(), now.UTC().Format(time.RFC3339))
	return batcher.Event{ExternalID: id, Topic: TestTopic, Payload: payload}
}

// testSend builds, signs and sends the test request and describes it.
func (c *courier) testSend(ctx context.Context, w subscriptions.Webhook) activity.Attempt {
	started := time.Now()
	ev := testEvent(started)
	a := activity.Attempt{
		ID: uuidV7(), AccountID: w.AccountID, WebhookID: w.ID, StartedAt: started.UTC(),
		Trigger: activity.TriggerTest, Outcome: activity.Failed, Events: 1, Attempt: 1,
		ExternalIDs: []string{ev.ExternalID},
	}
	req, body, cancel, err := c.newRequest(ctx, &w, []batcher.Event{ev}, nil, started.UTC())
	defer cancel()
	a.Bytes = len(body)
	if err != nil {
		a.ErrorClass, a.Error = activity.ClassInvalidURL, kinds[kindInvalid].text
		return a
	}
	o := c.do(req)
	a.ResponseExcerpt = scrub(o.excerpt, secretsOf(&w)...)
	a.Duration = time.Since(started)
	a.Status = o.status
	if o.ok() {
		a.Outcome = activity.Delivered
		return a
	}
	a.ErrorClass, a.Error = o.class(), o.String()
	return a
}

// uuidV7 is a time-ordered id, random-only if the clock read fails.
func uuidV7() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}
