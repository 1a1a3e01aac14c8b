package dispatcher

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Dead-letter headers. The message body is the original event, unchanged.
const (
	HeaderReason   = "Webhookd-Reason"      // why the event was set aside
	HeaderCode     = "Webhookd-Reason-Code" // short code, also the last subject token
	HeaderSubject  = "Webhookd-Subject"     // the subject it was published on
	HeaderSequence = "Webhookd-Stream-Seq"  // its sequence in the event stream
	HeaderMsgID    = "Webhookd-Msg-Id"      // the producer's Nats-Msg-Id, if any
)

// copyHeaders copies an event's headers onto a republished copy, except
// the Nats-* headers: they are instructions to the stream that stored the
// event (Nats-Expected-Stream, Nats-Expected-Last-Sequence, Nats-TTL,
// Nats-Rollup, Nats-Msg-Id...), which another stream would refuse or
// misapply, so the copy would never be stored.
func copyHeaders(dst, src nats.Header) {
	for k, v := range src {
		if !strings.HasPrefix(k, "Nats-") {
			dst[k] = v
		}
	}
}

// deadLetterer sets events aside on <prefix>.<code>.
type deadLetterer struct {
	prefix string
	js     jetstream.JetStream
	log    zerolog.Logger
	stats  *Stats

	sampleOnce sync.Once
	sampled    zerolog.Logger // log, at most deadLetterLogBurst lines a minute
}

// deadLetterLogBurst is how many dead-letter log lines a minute a replica
// writes: a producer may publish thousands of bad events, each counted
// (webhookd_dead_lettered_total) and kept on the dead-letter stream.
const deadLetterLogBurst = 10

// warn is the sampled logger for per-event lines.
func (dl *deadLetterer) warn() *zerolog.Logger {
	dl.sampleOnce.Do(func() {
		dl.sampled = dl.log.Sample(&zerolog.BurstSampler{Burst: deadLetterLogBurst, Period: time.Minute})
	})
	return &dl.sampled
}

// set puts m aside on <prefix>.<code> with the reason in a header, then
// terminates it so it is never redelivered to this webhook. Several
// webhooks subscribed to the same topic each meet the bad event; the
// message id <stream>:<seq>:<stored at> lets the dead-letter stream keep
// one copy, and only that first copy is counted and logged. The store
// time is part of the id because sequences restart when the event stream
// is recreated: a new bad event at a reused sequence is another event.
// If the dead-letter publish fails, the event is handed back rather than
// lost.
func (dl *deadLetterer) set(ctx context.Context, m jetstream.Msg, code, reason string) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	out := nats.NewMsg(dl.prefix + "." + code)
	out.Data = m.Data()
	copyHeaders(out.Header, m.Headers())
	if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" && out.Header.Get(HeaderMsgID) == "" {
		out.Header.Set(HeaderMsgID, id)
	}
	seq := strconv.FormatUint(md.Sequence.Stream, 10)
	out.Header.Set(jetstream.MsgIDHeader, md.Stream+":"+seq+":"+strconv.FormatInt(md.Timestamp.UnixNano(), 10))
	out.Header.Set(HeaderReason, reason)
	out.Header.Set(HeaderCode, code)
	out.Header.Set(HeaderSubject, m.Subject())
	out.Header.Set(HeaderSequence, seq)

	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ack, err := dl.js.PublishMsg(pctx, out)
	if err != nil {
		dl.warn().Error().Err(err).Str("subject", m.Subject()).Msg("dead-letter publish failed; event handed back")
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	if !ack.Duplicate {
		dl.stats.DeadLettered.Add(1)
		dl.warn().Warn().Str("subject", m.Subject()).Uint64("stream_seq", md.Sequence.Stream).
			Str("reason", reason).Msg("event set aside on the dead-letter subject (log sampled; webhookd_events_dead_lettered_total counts each)")
	}
	_ = m.TermWithReason(code)
}
