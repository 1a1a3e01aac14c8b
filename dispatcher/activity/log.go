package activity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The attempt log is a JetStream stream, WEBHOOKD_ACTIVITY, in file
// storage, with one subject per webhook: webhookd.activity.<account>.<webhook>.
// Why a stream and not Redis or local files:
//   - every replica writes to it and reads from it, so an attempt made on
//     one replica is visible from the API of any other;
//   - retention is the server's job: MaxAge drops attempts older than the
//     retention, MaxBytes caps the disk use, DiscardOld drops the oldest
//     first. Nothing in webhookd sweeps or compacts;
//   - the account and the webhook are in the subject, so a read filters on
//     the server and can never see another account's attempts;
//   - the stream sequence is a total order that new writes only extend, so
//     it is the cursor of the API's pages: a page chains to the next
//     without gaps or repeats however many attempts arrive meanwhile;
//   - the attempt id is the message's Nats-Msg-Id, so a publish retried
//     after a lost acknowledgement is stored once.
//
// Redis was the other candidate: it is memory, and a month of attempts
// does not belong in memory. The cost is the read side: JetStream reads
// forwards only, so newest-first pages scan windows backwards (reader.go).

// Defaults of Config.
const (
	DefaultStream    = "WEBHOOKD_ACTIVITY"
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultMaxBytes caps the log at 1 GiB. An attempt of one event takes
	// about 75 bytes on disk once compressed (360 in the stream; README,
	// "The attempt log"), so 1 GiB keeps some 14 million of them: a month
	// of a steady 5 requests a second, or the last day of 160 a second
	// (fewer for big batches: 1,000 ids are about 15 KB). The cap, not the
	// age, is what protects a single node's data directory (which also
	// holds the event stream) from a busy or failing webhook; raise it
	// with the disk.
	DefaultMaxBytes = 1 << 30
	// defaultBuffer is how many attempts wait for the writer before new
	// ones are dropped: at 10,000 requests a second, most of a second of
	// NATS unavailability, for about 2 MiB of memory.
	defaultBuffer = 8192
	// defaultWindow is how many publishes await their acknowledgement at
	// once; beyond it the writer waits. 256 keeps the round trip off the
	// throughput without queueing unboundedly inside the client.
	defaultWindow = 256
)

// subjectPrefix starts every subject of the log.
const subjectPrefix = "webhookd.activity."

// Config configures the attempt log. Zero fields take the defaults shown.
type Config struct {
	// Stream is the stream's name (WEBHOOKD_ACTIVITY).
	Stream string
	// Retention is how long attempts are kept (30 days).
	Retention time.Duration
	// MaxBytes caps the stream's size; the oldest attempts go first
	// (DefaultMaxBytes).
	MaxBytes int64
	// Replicas is the stream's replica count (1).
	Replicas int
	// Buffer is how many attempts may wait for the writer (8192); Window
	// how many publishes await their acknowledgement (256).
	Buffer, Window int
	// ObserveLag, if set, is told the time from Record to the stored
	// acknowledgement of each attempt written.
	ObserveLag func(time.Duration)
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Buffer <= 0 {
		c.Buffer = defaultBuffer
	}
	if c.Window <= 0 {
		c.Window = defaultWindow
	}
	return c
}

// streamConfig is the stream of the log. S2 compression: attempts are
// repetitive JSON, and compressed blocks cost little CPU on the writer.
func (c Config) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "webhookd attempt log: one message per delivery request",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.Retention,
		MaxBytes:    c.MaxBytes,
		Replicas:    c.Replicas,
		Duplicates:  2 * time.Minute,
		Compression: jetstream.S2Compression,
		AllowDirect: true,
	}
}

// Ensure creates the log's stream, or updates it to cfg (a new retention
// or cap applies at start-up).
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.withDefaults()
	if _, err := js.CreateOrUpdateStream(ctx, cfg.streamConfig()); err != nil {
		return fmt.Errorf("activity stream %s: %w", cfg.Stream, err)
	}
	return nil
}

// Subject is the subject of account's webhook's attempts.
func Subject(account, webhook string) string {
	return subjectPrefix + token(account) + "." + token(webhook)
}

// token makes s one subject token. Account ids are letters, digits, '_'
// and '-', webhook ids UUIDs, so this changes nothing in practice; it
// keeps a flow action id with a dot from spanning two tokens.
func token(s string) string {
	if s != "" && !strings.ContainsAny(s, ".*> \t\r\n") {
		return s
	}
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}
