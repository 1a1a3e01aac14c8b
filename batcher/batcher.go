// Package batcher groups events into request bodies and writes the
// data/meta envelope of a system webhook delivery (reference/klaviyo-api.md
// §7.2):
//
//	{"data":[{"external_id":"…","topic":"…","payload":{…}},…],
//	 "meta":{"klaviyo_account_id":"…","klaviyo_webhook_id":"…","timestamp":"…","version":"…"}}
//
// The envelope is written by appending bytes, never with json.Marshal: a
// []json.RawMessage is re-scanned and its payloads HTML-escaped by
// encoding/json (reference/tech-notes.md §6.5), while here each payload is
// copied unchanged after [Parse] has validated it once at ingest. Sizes are
// computed exactly, so [Pack] can cap every body without writing it first.
// The package is synchronous and does no I/O.
package batcher

import (
	"errors"
	"time"
)

// Event is one event to deliver.
type Event struct {
	// ExternalID is the event's id, written as external_id; receivers
	// dedupe on it. [Parse] extracts it from the payload.
	ExternalID string
	// Topic is the topic id, e.g. "event:klaviyo.sent_sms".
	Topic string
	// Payload is the event message body in Get Event shape
	// ({"data":{"type":"event","id":…}}), embedded byte for byte. It must
	// be valid JSON, which [Parse] checks; an empty Payload is written as
	// null so that the envelope stays valid JSON.
	Payload []byte
}

// Meta is the meta object of an envelope.
type Meta struct {
	AccountID string // klaviyo_account_id
	WebhookID string // klaviyo_webhook_id; must equal the Klaviyo-Webhook-Id header
	// Timestamp is when the request is sent, written in UTC with
	// microseconds, e.g. "2024-01-04T13:05:25.891446+00:00". Its width is
	// the same for every year from 0 to 9999, so a batch split with one
	// Timestamp may be sent with a later one.
	Timestamp time.Time
	Version   string // version, an API revision date such as "2024-07-15"
}

// Version is meta.version in every request body: the Klaviyo API revision
// whose delivery format webhookd speaks (and the revision its API answers
// as).
const Version = "2026-07-15"

// Defaults of [Config].
const (
	// DefaultMaxEvents is the most events Klaviyo puts in one request
	// (reference/klaviyo-api.md §7.4); receivers reject more.
	DefaultMaxEvents = 1000
	// DefaultMaxBytes caps a body at 4 MiB: 1,000 typical events of ~1 KB
	// take ~1 MB, and 4 MiB still uploads within the 5 s delivery deadline
	// at ~7 Mbit/s, while leaving room for a few large events.
	DefaultMaxBytes = 4 << 20
)

// Config caps the bodies [Pack] produces. Zero or negative fields take the
// defaults.
type Config struct {
	MaxEvents int // events per body (DefaultMaxEvents, 1000)
	MaxBytes  int // exact body length in bytes (DefaultMaxBytes, 4 MiB)
}

func (c Config) maxEvents() int {
	if c.MaxEvents <= 0 {
		return DefaultMaxEvents
	}
	return c.MaxEvents
}

func (c Config) maxBytes() int {
	if c.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return c.MaxBytes
}

// Errors returned by [Parse], and [ErrTooLarge] for the events [Pack]
// leaves out. Their messages are short reasons fit for a dead-letter header, and never contain payload bytes; [Reason]
// gives each its code. The first five are faults of the body as JSON: a
// receiver's parser would refuse the whole request for one such event,
// on every retry, so Parse refuses them at intake instead.
var (
	// ErrNotJSON means an event message body is not valid JSON.
	ErrNotJSON = errors.New("batcher: not valid JSON")
	// ErrNotUTF8 means an event message body has a string that is not
	// UTF-8 (json.Valid accepts it). JSON exchanged between systems must
	// be UTF-8 (RFC 8259 §8.1) and strict receivers such as Python's
	// json.loads reject the whole request otherwise.
	ErrNotUTF8 = errors.New("batcher: not UTF-8")
	// ErrTooDeep means an event message body nests arrays and objects
	// deeper than [MaxDepth], which inside an envelope is deeper than
	// receivers such as .NET's parsers accept by default.
	ErrTooDeep = errors.New("batcher: nested too deeply")
	// ErrNumberRange means an event message body has a number beyond the
	// range of a double, such as 1e400 (see [jsonscan.ErrRange]).
	// Receivers that read numbers as doubles refuse it or turn it into an
	// infinity. A number too small for a double reads as 0 and is
	// accepted.
	ErrNumberRange = errors.New("batcher: number out of range")
	// ErrNotObject means an event message body is JSON but not an object.
	ErrNotObject = errors.New("batcher: not a JSON object")
	// ErrNoID means an event has neither a data.id string nor a message id.
	ErrNoID = errors.New("batcher: no event id")
	// ErrTooLarge means an event does not fit in a body of Config.MaxBytes
	// even alone (see [Pack]).
	ErrTooLarge = errors.New("batcher: event too large")
)
