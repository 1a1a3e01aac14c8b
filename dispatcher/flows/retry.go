package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
)

// retryMsg is one (event, action) waiting on the retry stream. The
// event travels along, so a retry does not depend on the event stream's
// retention.
type retryMsg struct {
	FlowID   string          `json:"flow_id"`
	ActionID string          `json:"action_id"`
	Seq      uint64          `json:"event_seq"`
	Subject  string          `json:"subject"`
	Attempt  int             `json:"attempt"` // the number of the request to make
	First    int64           `json:"first"`   // unix ms of the first request
	Next     int64           `json:"next"`    // unix ms: not before
	Event    json.RawMessage `json:"event"`
}

// settle publishes j's next run, if any, on the retry stream.
func (d *Delivery) settle(ctx context.Context, j job, n next) error {
	if !n.again {
		return nil
	}
	rm := retryMsg{FlowID: j.l.flow.ID, ActionID: j.l.action.ID, Seq: j.seq, Subject: j.subject,
		Attempt: n.attempt, First: j.first.UnixMilli(), Next: n.at.UnixMilli(), Event: j.raw}
	body, err := json.Marshal(rm)
	if err != nil {
		return fmt.Errorf("flows: encode retry: %w", err)
	}
	msg := &nats.Msg{Subject: retrySubjectPrefix + "." + j.l.action.ID, Data: body, Header: nats.Header{}}
	// Publishing twice (a replica crashed between publish and ack) is
	// collapsed by the stream's duplicate window.
	id := fmt.Sprintf("%d.%s.%d.%d", j.seq, j.l.action.ID, n.attempt, rm.Next)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := d.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id)); err != nil {
		d.warn.Warn().Err(err).Str("action_id", j.l.action.ID).Msg("flow delivery: cannot write a retry; the event comes back (logged at most 5 times a minute)")
		return err
	}
	return nil
}

// handleRetry waits until a retry is due (NakWithDelay), then runs it.
func (d *Delivery) handleRetry(ctx context.Context, m jetstream.Msg) {
	var rm retryMsg
	if err := json.Unmarshal(m.Data(), &rm); err != nil || rm.Attempt < 1 {
		_ = m.Term() // not ours
		return
	}
	if wait := time.Until(time.UnixMilli(rm.Next)); wait > 0 {
		_ = m.NakWithDelay(wait)
		return
	}
	ev, err := flowtmpl.ParseEvent(rm.Event)
	if err != nil {
		_ = m.Term()
		return
	}
	l := d.idx.action(rm.ActionID)
	if l == nil {
		d.skipNotLive(ctx, rm, ev)
		_ = m.Ack()
		return
	}
	j := job{l: l, ev: ev, raw: rm.Event, subject: rm.Subject, seq: rm.Seq, attempt: rm.Attempt, first: time.UnixMilli(rm.First)}
	if err := d.settle(ctx, j, d.run(ctx, j)); err != nil {
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// skipNotLive ends a retry whose action is not in the index: deleted
// (alone or with its flow), or no longer live. Nothing is sent; the
// event counts as skipped and the attempt log says why, so the action's
// activity does not show it waiting for ever. A deleted action's
// counters are gone with it and are not made again.
func (d *Delivery) skipNotLive(ctx context.Context, rm retryMsg, ev *flowtmpl.Event) {
	d.stats.Skipped.Add(1)
	reason := "the action is no longer live; its retry was not sent"
	exists, err := d.store.ActionExists(ctx, rm.ActionID)
	d.noteStore(err)
	if err == nil && !exists {
		reason = "the action was deleted; its retry was not sent"
	} else { // not live, or not known while Redis fails: count it
		d.noteStore(d.store.SkipUnsent(ctx, rm.ActionID, true))
	}
	if _, account, err := dispatcher.ParseSubject(rm.Subject, d.cfg.DefaultAccount); err == nil {
		d.recordUnsent(account, rm.FlowID, rm.ActionID, ev, rm.Attempt, time.UnixMilli(rm.First), activity.ClassNotLive, reason)
	}
}
