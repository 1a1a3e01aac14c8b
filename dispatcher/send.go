package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/signer"
	"github.com/webhookd/webhookd/subscriptions"
)

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// pauseSlack is how much later than DeliveryTimeout a request may end and
// still be a timeout at the endpoint. A request that ends much later was
// not timed out by the endpoint: this process was paused (SIGSTOP, a VM
// freeze) while it was in flight, and the endpoint's answer is unknown.
const pauseSlack = time.Second

// send posts the events of s as one request, right after checking that
// the lease is still held and extending it. sent is false when the lease
// was lost (or could not be confirmed), or when this process was paused
// during the request: then nothing is known about the events and they
// are handed back, never counted as the webhook's failure. On success the
// events of s are acknowledged.
func (d *delivery) send(ctx context.Context, s span) (o outcome, sent bool) {
	c := d.c
	ok, err := c.slots.ExtendSlot(ctx, d.w.ID, d.holder, c.cfg.Lease)
	if errors.Is(err, subscriptions.ErrWebhookGone) {
		// Disabled or deleted since the batch took its slot: nothing more
		// is sent. The events go back, and the next slot request (Gone)
		// drops them, as it does for a batch that finds the webhook gone.
		c.log.Debug().Str("webhook_id", d.w.ID).Int("events", s.len()).Msg("request not sent: webhook disabled or deleted meanwhile")
		return outcome{}, false
	}
	if err != nil || !ok {
		c.stats.LostLeases.Add(1)
		c.lostLog().Warn().Str("webhook_id", d.w.ID).Int("events", s.len()).
			Msg("request not sent: its in-flight slot lease expired or could not be renewed (a paused replica?); events handed back")
		return outcome{}, false
	}
	o = c.post(ctx, d.w, d, s, time.Now())
	if o.kind != kindNotSent {
		d.record(s, o)
	}
	if o.kind == kindNotSent || o.kind == kindInterrupted {
		return o, false
	}
	if o.ok() {
		for i := s.lo; i < s.hi; i++ {
			if !d.settled[i].Swap(true) {
				_ = d.msgs[i].Ack()
			}
		}
		c.stats.Delivered.Add(int64(s.len()))
		d.delivered = true
	}
	return o, true
}

// post signs and sends the events of s as one request. extended is when
// the lease was last extended: if building the request took so long that
// the lease could run out before the request ends (the process was
// paused), the request is not sent.
func (c *courier) post(ctx context.Context, w subscriptions.Webhook, d *delivery, s span, extended time.Time) outcome {
	started := time.Now()
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	req, body, cancel, err := c.newRequest(ctx, &w, d.evs[s.lo:s.hi], (*bp)[:0], time.Now().UTC())
	defer cancel()
	if body != nil {
		*bp = body
	}
	if err != nil {
		return outcome{kind: kindInvalid, started: started}
	}

	if time.Since(extended) > c.cfg.Lease-c.cfg.DeliveryTimeout-pauseSlack {
		return outcome{kind: kindNotSent, started: started}
	}
	c.stats.InFlight.Add(1)
	start := time.Now()
	o := c.do(req)
	took := time.Since(start)
	c.stats.InFlight.Add(-1)
	if o.kind == kindTimeout && took > c.cfg.DeliveryTimeout+pauseSlack {
		o.kind = kindInterrupted
	}
	o.started, o.took, o.bytes = start, took, len(body)
	if c.cfg.Observer != nil && o.kind != kindInterrupted {
		c.cfg.Observer.Request(o.label(), s.len(), len(body), took)
	}
	return o
}

// newRequest is w's POST of evs at now, the one way every request to an
// endpoint is built (deliveries, replays, test sends): the endpoint
// validated, the envelope (meta.timestamp now) appended to buf, a context
// bounded by DeliveryTimeout, Content-Type, User-Agent and the signature
// headers at now with w's active secrets (Webhookd-Signature during a
// rotation). body is the envelope once built, also when err is not nil;
// err is an endpoint that cannot be posted to. Call cancel when the
// request is done, err or not.
func (c *courier) newRequest(ctx context.Context, w *subscriptions.Webhook, evs []batcher.Event, buf []byte, now time.Time) (req *http.Request, body []byte, cancel context.CancelFunc, err error) {
	if err := subscriptions.ValidateEndpoint(w.EndpointURL, c.cfg.AllowInsecureEndpoints); err != nil {
		return nil, nil, func() {}, err
	}
	body = batcher.AppendEnvelope(buf, evs, c.meta(*w, now))
	ctx, cancel = context.WithTimeout(ctx, c.cfg.DeliveryTimeout)
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, w.EndpointURL, bytes.NewReader(body))
	if err != nil {
		return nil, body, cancel, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	signer.SetHeadersRotating(req.Header, w.ID, activeSecrets(w, now), body, now)
	return req, body, cancel, nil
}

// do sends req and classifies what came back.
func (c *courier) do(req *http.Request) outcome {
	resp, err := c.client.Do(req)
	if err != nil {
		return classify(err)
	}
	excerpt := readExcerpt(resp)
	resp.Body.Close()
	if !Successful(resp.StatusCode) {
		return outcome{kind: kindStatus, status: resp.StatusCode, excerpt: excerpt}
	}
	return outcome{kind: kindOK, status: resp.StatusCode, excerpt: excerpt}
}

// drain reads a little more of resp's body so the connection is reused;
// never more than 64 KiB.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
}

// activeSecrets are the secrets that sign a request of w sent at now,
// primary first: two while a secret rotation overlaps (see
// subscriptions.Webhook.Secrets).
func activeSecrets(w *subscriptions.Webhook, now time.Time) [][]byte {
	ss := w.Secrets(now)
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}
