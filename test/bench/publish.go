package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// eventGen writes events of Klaviyo's Get Event shape, field for field
// what `webhookd publish --generate` produces (cmd/webhookd/generate.go:
// the same keys in the same order, padded to about size bytes through
// "Message Body", with event_properties.published_ns for the sink's
// latency), but by appending into a buffer: the bench publishes a million
// events on a 2-core machine and must not become the bottleneck it
// measures. Ids are a per-run random prefix and a counter, so they are
// unique by construction.
type eventGen struct {
	prefix  string // 4 random base62 characters
	profile string
	metric  string
	pad     string // Message Body, sized once: every other field has a fixed width
	n       atomic.Uint64
	uuidRnd *rand.ChaCha8
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func newEventGen(size int) *eventGen {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	g := &eventGen{prefix: randID(4), profile: "01" + randID(24), metric: randID(6), uuidRnd: rand.NewChaCha8(seed)}
	probe := g.appendEvent(nil, "000000000000", time.Now())
	if pad := size - len(probe); pad > 0 {
		const text = "Hi there! Your early access to our Black Friday sale starts now: 30% off everything " +
			"with code EARLY30. Reply STOP to opt out. "
		g.pad = strings.Repeat(text, pad/len(text)+1)[:pad]
	}
	return g
}

func randID(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return string(b)
}

// nextID returns a new 12-character event id.
func (g *eventGen) nextID() string {
	v := g.n.Add(1)
	var b [12]byte
	copy(b[:], g.prefix)
	for i := 11; i >= 4; i-- {
		b[i] = idAlphabet[v%62]
		v /= 62
	}
	return string(b[:])
}

// appendEvent appends one event with id, created (and published) at now.
// Not safe for concurrent use (the uuid source).
func (g *eventGen) appendEvent(b []byte, id string, now time.Time) []byte {
	base := "https://a.klaviyo.com/api/events/" + id + "/"
	sec := now.Unix()
	var u [16]byte
	_, _ = g.uuidRnd.Read(u[:])
	u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
	const hx = "0123456789abcdef"
	var us [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			us[j] = '-'
			j++
		}
		us[j], us[j+1] = hx[c>>4], hx[c&15]
		j += 2
	}

	b = append(b, `{"data":{"type":"event","id":"`...)
	b = append(b, id...)
	b = append(b, `","attributes":{"timestamp":`...)
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, `,"event_properties":{"$_cohort$group":"default","$attribution":{"$attributed_event_id":"`...)
	b = append(b, id...)
	b = append(b, `","$send_ts":`...)
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, `},"$event_id":"`...)
	b = append(b, id...)
	b = append(b, `","$message":"`...)
	b = append(b, id[6:]...)
	b = append(b, `","Campaign Name":"Black Friday early access","From Number":"+15555550100","Message Body":"`...)
	b = append(b, g.pad...)
	b = append(b, `","Message Name":"Welcome series SMS 1","Message Type":"SMS","To Number":"+15555550123","published_ns":`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, `},"datetime":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02 15:04:05+00:00")
	b = append(b, `","uuid":"`...)
	b = append(b, us[:]...)
	b = append(b, `"},"relationships":{"metric":{"data":{"type":"metric","id":"`...)
	b = append(b, g.metric...)
	b = append(b, `"},"links":{"related":"`+base+`metric/","self":"`+base+`relationships/metric/"}},"profile":{"data":{"type":"profile","id":"`...)
	b = append(b, g.profile...)
	b = append(b, `"},"links":{"related":"`+base+`profile/","self":"`+base+`relationships/profile/"}}},"links":{"self":"`+base+`"}}}`...)
	return b
}

// pubResult is what one publish run achieved.
type pubResult struct {
	Sent     int     `json:"sent"`
	Failed   int64   `json:"failed"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"events_per_s"`
	Subjects int     `json:"subjects"`
}

// Acked is how many events the stream confirmed.
func (r pubResult) Acked() int { return r.Sent - int(r.Failed) }

// publisher publishes generated events with PublishAsync, as a producer
// should (tech-notes §1.4), each with Nats-Msg-Id = data.id so JetStream
// drops producer retries, as the README recommends.
type publisher struct {
	js  jetstream.JetStream
	gen *eventGen
	bad atomic.Int64
}

func newPublisher(nc *nats.Conn, eventBytes int) (*publisher, error) {
	p := &publisher{gen: newEventGen(eventBytes)}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { p.bad.Add(1) }))
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

// publish sends n events round-robin over subjects, at rate events/s (0:
// as fast as acknowledgements allow), and waits for every
// acknowledgement. published_ns is the moment each event is handed to the
// client.
func (p *publisher) publish(ctx context.Context, subjects []string, n int, rate float64) (pubResult, error) {
	p.bad.Store(0)
	start := time.Now()
	sent := 0
	for sent < n {
		if err := ctx.Err(); err != nil {
			return pubResult{}, err
		}
		due := n
		if rate > 0 {
			due = min(n, int(time.Since(start).Seconds()*rate)+1)
			if due <= sent {
				time.Sleep(time.Duration(float64(sent+1-due)/rate*1e9) + 200*time.Microsecond)
				continue
			}
		}
		for ; sent < due; sent++ {
			id := p.gen.nextID()
			m := &nats.Msg{
				Subject: subjects[sent%len(subjects)],
				Data:    p.gen.appendEvent(make([]byte, 0, 1280), id, time.Now()),
				Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
			}
			// A server busy writing its store can hold acks for a while;
			// waiting is what a producer does (the default gives up
			// after 200 ms).
			if _, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				return pubResult{}, fmt.Errorf("publish: %w", err)
			}
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return pubResult{}, ctx.Err()
	case <-time.After(2 * time.Minute):
		return pubResult{}, fmt.Errorf("publish: %d acknowledgements still pending after 2m", p.js.PublishAsyncPending())
	}
	secs := time.Since(start).Seconds()
	return pubResult{Sent: n, Failed: p.bad.Load(), Seconds: secs, PerSec: float64(n) / secs, Subjects: len(subjects)}, nil
}
