package main

import (
	"crypto/rand"
	"encoding/json"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"
)

// generatedEvent is one synthesised event and the ids publish may use
// as its Nats-Msg-Id.
type generatedEvent struct {
	ID, UUID string
	JSON     []byte
}

// generator synthesises events in Get Event shape (reference §8), like
// Klaviyo's sent_sms events, padded to about size bytes. Each carries
// event_properties.published_ns, its creation time, from which the sink
// measures publish→receive latency.
type generator struct {
	size    int
	profile string
	metric  string
}

func newGenerator(size int) *generator {
	return &generator{size: size, profile: "01" + randID(24), metric: randID(6)}
}

// idAlphabet is the base62 alphabet of Klaviyo-like ids (4L3cwQae2TX).
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randID returns n random base62 characters. At 12 characters (71 bits)
// a million events collide with probability about 2e-10.
func randID(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(idAlphabet)))
	for i := range b {
		v, _ := rand.Int(rand.Reader, max) // never fails since Go 1.24
		b[i] = idAlphabet[v.Int64()]
	}
	return string(b)
}

// Field names follow Klaviyo's Get Event resource; order in the output is
// the struct order, which keeps the events readable.
type genDoc struct {
	Data genData `json:"data"`
}

type genData struct {
	Type          string                 `json:"type"`
	ID            string                 `json:"id"`
	Attributes    genAttrs               `json:"attributes"`
	Relationships map[string]genRelation `json:"relationships"`
	Links         map[string]string      `json:"links"`
}

type genAttrs struct {
	Timestamp       int64          `json:"timestamp"`
	EventProperties map[string]any `json:"event_properties"`
	Datetime        string         `json:"datetime"`
	UUID            string         `json:"uuid"`
}

type genRelation struct {
	Data  genRef            `json:"data"`
	Links map[string]string `json:"links"`
}

type genRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// next returns a new event created at now.
func (g *generator) next(now time.Time) generatedEvent {
	id := randID(12)
	u := uuid.NewString()
	base := "https://a.klaviyo.com/api/events/" + id + "/"
	rel := func(kind, relID string) genRelation {
		return genRelation{
			Data:  genRef{Type: kind, ID: relID},
			Links: map[string]string{"self": base + "relationships/" + kind + "/", "related": base + kind + "/"},
		}
	}
	props := map[string]any{
		"$event_id":      id,
		"$message":       randID(6),
		"Message Name":   "Welcome series SMS 1",
		"Message Type":   "SMS",
		"Campaign Name":  "Black Friday early access",
		"From Number":    "+15555550100",
		"To Number":      "+15555550123",
		"Message Body":   "",
		"$attribution":   map[string]any{"$send_ts": now.Unix(), "$attributed_event_id": randID(12)},
		"published_ns":   now.UnixNano(),
		"$_cohort$group": "default",
	}
	doc := genDoc{Data: genData{
		Type: "event",
		ID:   id,
		Attributes: genAttrs{
			Timestamp:       now.Unix(),
			EventProperties: props,
			Datetime:        now.UTC().Format("2006-01-02 15:04:05+00:00"),
			UUID:            u,
		},
		Relationships: map[string]genRelation{"profile": rel("profile", g.profile), "metric": rel("metric", g.metric)},
		Links:         map[string]string{"self": base},
	}}
	b, _ := json.Marshal(doc) // plain maps and strings: cannot fail
	if pad := g.size - len(b); pad > 0 {
		props["Message Body"] = smsBody(pad)
		b, _ = json.Marshal(doc)
	}
	return generatedEvent{ID: id, UUID: u, JSON: b}
}

// smsBody returns n bytes of plausible message text, used as padding.
func smsBody(n int) string {
	const text = "Hi there! Your early access to our Black Friday sale starts now: 30% off everything " +
		"with code EARLY30. Reply STOP to opt out. "
	return strings.Repeat(text, n/len(text)+1)[:n]
}
