// Package eventgen synthesises events in Klaviyo's Get Event shape
// (reference §8), like Klaviyo's sent_sms events. It is the one generator
// behind `webhookd publish --generate` and the benchmark (test/bench),
// which is why it is not under internal/: the benchmark is another main
// package of the module.
//
// Each event carries event_properties.published_ns, its creation time in
// Unix nanoseconds, from which `webhookd sink` measures publish→receive
// latency.
package eventgen

import (
	crand "crypto/rand"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// idAlphabet is the base62 alphabet of Klaviyo-like ids (4L3cwQae2TX).
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idLen is the length of an event id; the first prefixLen characters are
// fixed per Generator, the rest a counter.
const (
	idLen     = 12
	prefixLen = 4
	// counterSpace is 62^(idLen-prefixLen), the ids one prefix can hold.
	counterSpace = 62 * 62 * 62 * 62 * 62 * 62 * 62 * 62
)

// Event is one generated event and the ids a publisher may use as its
// Nats-Msg-Id.
type Event struct {
	ID   string // data.id, 12 base62 characters
	UUID string // data.attributes.uuid
	JSON []byte
}

// Generator writes events padded to about a given size through their
// "Message Body". It appends into a buffer instead of marshalling: the
// benchmark publishes a million events on a 2-core machine and the
// generator must not become the bottleneck it measures. Ids are a random
// prefix and a counter from a random start, so one Generator never repeats
// an id and two collide with negligible probability. A Generator is not
// safe for concurrent use.
type Generator struct {
	prefix  string // prefixLen random base62 characters
	counter uint64
	profile string
	metric  string
	pad     string // Message Body, sized once: every other field has a fixed width
	uuidRnd *rand.ChaCha8
}

// New returns a generator of events of about size bytes (at least the
// size of an event with an empty Message Body, about 1,070 bytes).
func New(size int) *Generator {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails since Go 1.24
	g := &Generator{
		prefix:  randID(prefixLen),
		counter: rand.Uint64N(counterSpace),
		profile: "01" + randID(24),
		metric:  randID(6),
		uuidRnd: rand.NewChaCha8(seed),
	}
	probe := g.appendEvent(nil, strings.Repeat("0", idLen), make([]byte, 36), time.Now())
	if pad := size - len(probe); pad > 0 {
		const text = "Hi there! Your early access to our Black Friday sale starts now: 30% off everything " +
			"with code EARLY30. Reply STOP to opt out. "
		g.pad = strings.Repeat(text, pad/len(text)+1)[:pad]
	}
	return g
}

// randID returns n random base62 characters.
func randID(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return string(b)
}

// Append appends a new event, created (and published) at now, to b and
// returns it; Event.JSON is the extended b.
func (g *Generator) Append(b []byte, now time.Time) Event {
	id := g.nextID()
	var u [36]byte
	g.uuid(u[:])
	b = g.appendEvent(b, id, u[:], now)
	return Event{ID: id, UUID: string(u[:]), JSON: b}
}

// nextID returns the next event id.
func (g *Generator) nextID() string {
	v := g.counter % counterSpace
	g.counter++
	var b [idLen]byte
	copy(b[:], g.prefix)
	for i := idLen - 1; i >= prefixLen; i-- {
		b[i] = idAlphabet[v%62]
		v /= 62
	}
	return string(b[:])
}

// uuid writes a random (version 4) UUID in its 36-character text form.
func (g *Generator) uuid(dst []byte) {
	var u [16]byte
	_, _ = g.uuidRnd.Read(u[:])
	u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
	const hx = "0123456789abcdef"
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hx[c>>4], hx[c&15]
		j += 2
	}
}

// appendEvent appends the event's JSON. Keys are in sorted order within
// each object, as encoding/json writes maps.
func (g *Generator) appendEvent(b []byte, id string, uuid []byte, now time.Time) []byte {
	base := "https://a.klaviyo.com/api/events/" + id + "/"
	sec := now.Unix()
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
	b = append(b, uuid...)
	b = append(b, `"},"relationships":{"metric":{"data":{"type":"metric","id":"`...)
	b = append(b, g.metric...)
	b = append(b, `"},"links":{"related":"`+base+`metric/","self":"`+base+`relationships/metric/"}},"profile":{"data":{"type":"profile","id":"`...)
	b = append(b, g.profile...)
	b = append(b, `"},"links":{"related":"`+base+`profile/","self":"`+base+`relationships/profile/"}}},"links":{"self":"`+base+`"}}}`...)
	return b
}
