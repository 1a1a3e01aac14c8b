package dispatcher

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/signer"
	"github.com/webhookd/webhookd/subscriptions"
)

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// deliver sends msgs to w in as few requests as the caps allow, one after
// another under the slot holder took, then acknowledges or hands back each
// request's events. It runs to completion even during shutdown: every
// request is bounded by DeliveryTimeout.
func (d *Dispatcher) deliver(w subscriptions.Webhook, holder string, msgs []jetstream.Msg) {
	ctx := context.Background()
	defer func() {
		if err := d.store.ReleaseSlot(ctx, w.ID, holder); err != nil {
			d.log.Debug().Err(err).Str("webhook_id", w.ID).Msg("releasing slot; its lease expires by itself")
		}
	}()
	msgs, evs := d.prepare(ctx, w, msgs)
	delivered := false
	sent := 0 // msgs[:sent] are settled
	for i, body := range d.split(w, evs) {
		part := msgs[sent : sent+len(body)]
		if i > 0 {
			_, _ = d.store.ExtendSlot(ctx, w.ID, holder, d.cfg.Lease)
			for _, m := range part {
				_ = m.InProgress()
			}
		}
		started := time.Now()
		if o := d.post(ctx, w, body); !o.ok() {
			d.fail(ctx, w, o, started, msgs[sent:])
			break
		}
		for _, m := range part {
			_ = m.Ack()
		}
		sent += len(part)
		d.stats.Delivered.Add(int64(len(part)))
		delivered = true
	}
	if delivered {
		recovered, err := d.store.RecordSuccess(ctx, w.ID)
		if err == nil && recovered {
			d.log.Info().Str("webhook_id", w.ID).Msg("webhook recovered: endpoint answering again")
		}
	}
}

// prepare turns messages into events; the i-th event comes from the i-th
// message returned. Messages that cannot be delivered (not JSON, no id,
// too large for any request) are dead-lettered and never reach a batch.
func (d *Dispatcher) prepare(ctx context.Context, w subscriptions.Webhook, msgs []jetstream.Msg) ([]jetstream.Msg, []batcher.Event) {
	keep := msgs[:0]
	evs := make([]batcher.Event, 0, len(msgs))
	meta := d.meta(w, time.Now())
	for _, m := range msgs {
		topic, _, err := ParseSubject(m.Subject(), d.cfg.DefaultAccount)
		if err != nil {
			d.deadLetter(ctx, m, "bad_subject", err.Error())
			continue
		}
		var msgID string
		if h := m.Headers(); h != nil {
			msgID = h.Get(jetstream.MsgIDHeader)
		}
		id, err := batcher.Parse(m.Data(), msgID)
		if err != nil {
			d.deadLetter(ctx, m, reasonCode(err), err.Error())
			continue
		}
		ev := batcher.Event{ExternalID: id, Topic: topic, Payload: m.Data()}
		if !batcher.Fits(ev, d.batchConfig(), meta) {
			d.deadLetter(ctx, m, "too_large", "event larger than --batch-max-bytes allows in one request")
			continue
		}
		keep = append(keep, m)
		evs = append(evs, ev)
	}
	return keep, evs
}

// post signs and sends one request.
func (d *Dispatcher) post(ctx context.Context, w subscriptions.Webhook, evs []batcher.Event) outcome {
	if err := subscriptions.ValidateEndpoint(w.EndpointURL, d.cfg.AllowInsecureEndpoints); err != nil {
		return outcome{kind: kindInvalid}
	}
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	now := time.Now().UTC()
	body := batcher.AppendEnvelope((*bp)[:0], evs, d.meta(w, now))
	*bp = body

	ctx, cancel := context.WithTimeout(ctx, d.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.EndpointURL, bytes.NewReader(body))
	if err != nil {
		return outcome{kind: kindInvalid}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	signer.SetHeaders(req.Header, w.ID, []byte(w.Secret), body, now)

	d.stats.Requests.Add(1)
	d.stats.InFlight.Add(1)
	start := time.Now()
	o := d.do(req)
	d.stats.InFlight.Add(-1)
	if o.ok() {
		d.stats.Succeeded.Add(1)
	} else {
		d.stats.Failed.Add(1)
	}
	if d.cfg.Observer != nil {
		d.cfg.Observer.Request(o.label(), len(evs), len(body), time.Since(start))
	}
	return o
}

// do sends req and classifies what came back.
func (d *Dispatcher) do(req *http.Request) outcome {
	resp, err := d.client.Do(req)
	if err != nil {
		return classify(err)
	}
	// Drain a little so the connection is reused; never more than 64 KiB.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !Successful(resp.StatusCode) {
		return outcome{kind: kindStatus, status: resp.StatusCode}
	}
	return outcome{kind: kindOK, status: resp.StatusCode}
}

// fail records a failed request and hands its events (and any not yet
// sent) back to JetStream for redelivery after the backoff.
func (d *Dispatcher) fail(ctx context.Context, w subscriptions.Webhook, o outcome, started time.Time, msgs []jetstream.Msg) {
	res, err := d.store.RecordFailure(ctx, w.ID, subscriptions.Failure{
		Status: o.status, Error: o.String(), StartedAt: started,
	}, subscriptions.Backoff{
		Base: d.cfg.BackoffBase, Max: d.cfg.BackoffMax, DisableAfter: d.cfg.DisableAfter,
		Jitter: 0.8 + 0.4*rand.Float64(),
	})
	delay := res.Delay
	if err != nil {
		// Redis away: fall back to this batch's own attempt count.
		delay = d.localBackoff(msgs)
		d.log.Error().Err(err).Str("webhook_id", w.ID).Msg("recording delivery failure")
	}
	nakAll(msgs, delay)
	ev := d.log.Warn().Str("webhook_id", w.ID).Str("account_id", w.AccountID).Int("events", len(msgs)).
		Str("error", o.String()).Int("attempt", res.Failures).Dur("retry_in", delay)
	if o.status != 0 {
		ev = ev.Int("status", o.status)
	}
	ev.Msg("delivery failed")
	if res.Disabled {
		d.stats.Disabled.Add(1)
		d.log.Warn().Str("webhook_id", w.ID).Str("account_id", w.AccountID).Time("error_since", res.ErrorSince).
			Msg("webhook disabled: in error longer than disable-after")
	}
}

// localBackoff is the retry delay when Redis cannot be asked: exponential
// in the highest delivery count of the batch, capped at BackoffMax.
func (d *Dispatcher) localBackoff(msgs []jetstream.Msg) time.Duration {
	n := uint64(1)
	for _, m := range msgs {
		if md, err := m.Metadata(); err == nil {
			n = max(n, md.NumDelivered)
		}
	}
	delay := d.cfg.BackoffBase
	for i := uint64(1); i < n && delay < d.cfg.BackoffMax; i++ {
		delay *= 2
	}
	return jitter(min(delay, d.cfg.BackoffMax))
}
