package dispatcher

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dead-letter headers. The message body is the original event, unchanged.
const (
	HeaderReason   = "Webhookd-Reason"      // why the event was set aside
	HeaderCode     = "Webhookd-Reason-Code" // short code, also the last subject token
	HeaderSubject  = "Webhookd-Subject"     // the subject it was published on
	HeaderSequence = "Webhookd-Stream-Seq"  // its sequence in the event stream
	HeaderMsgID    = "Webhookd-Msg-Id"      // the producer's Nats-Msg-Id, if any
)

// deadLetter sets m aside on <DeadLetter>.<code> with the reason in a
// header, then terminates it so it is never redelivered to this webhook.
// Several webhooks subscribed to the same topic each meet the bad event;
// the message id <stream>:<seq> lets the dead-letter stream keep one
// copy, and only that first copy is counted and logged. If the dead-letter
// publish fails, the event is handed back rather than lost.
func (d *Dispatcher) deadLetter(ctx context.Context, m jetstream.Msg, code, reason string) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	out := nats.NewMsg(d.cfg.DeadLetter + "." + code)
	out.Data = m.Data()
	for k, v := range m.Headers() {
		out.Header[k] = v
	}
	if id := out.Header.Get(jetstream.MsgIDHeader); id != "" {
		out.Header.Set(HeaderMsgID, id)
	}
	seq := strconv.FormatUint(md.Sequence.Stream, 10)
	out.Header.Set(jetstream.MsgIDHeader, md.Stream+":"+seq)
	out.Header.Set(HeaderReason, reason)
	out.Header.Set(HeaderCode, code)
	out.Header.Set(HeaderSubject, m.Subject())
	out.Header.Set(HeaderSequence, seq)

	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ack, err := d.js.PublishMsg(pctx, out)
	if err != nil {
		d.log.Error().Err(err).Str("subject", m.Subject()).Msg("dead-letter publish failed; event handed back")
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	if !ack.Duplicate {
		d.stats.DeadLettered.Add(1)
		d.log.Warn().Str("subject", m.Subject()).Uint64("stream_seq", md.Sequence.Stream).
			Str("reason", reason).Msg("event set aside on the dead-letter subject")
	}
	_ = m.TermWithReason(code)
}
