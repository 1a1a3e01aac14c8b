package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/subscriptions"
)

// maxLine bounds one NDJSON line. NATS refuses payloads above its
// max_payload (1 MiB by default) anyway; the larger buffer lets such a
// line reach the server and fail there, counted, instead of stopping the
// read.
const maxLine = 8 << 20

// publishConfig is the configuration of `webhookd publish`.
type publishConfig struct {
	NATSURL    string
	File       string
	Topic      string
	Account    string
	Count      int
	Generate   bool
	Rate       float64
	MsgIDFrom  string
	Strict     bool
	MaxPending int
	AckTimeout time.Duration
	EventBytes int
}

func newPublishFlags(c *publishConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: webhookd publish --topic TOPIC [--file events.ndjson | --generate --count N] [flags]\n\n"+
			"Publishes events to JetStream, one JSON event (Get Event shape) per line, on subject\n"+
			"<topic> or <topic>.<account>, and waits for every acknowledgement.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS `URL`")
	fs.StringVar(&c.File, "file", "-", "NDJSON `file` of events, - for stdin")
	fs.StringVar(&c.Topic, "topic", "", "topic id, e.g. event:klaviyo.sent_sms (required)")
	fs.StringVar(&c.Account, "account", "", "account id: publish on <topic>.<account> (default: the bare topic, webhookd's --default-account)")
	fs.BoolVar(&c.Generate, "generate", false, "synthesise --count realistic ~1 KB events instead of reading --file")
	fs.IntVar(&c.Count, "count", 0, "number of events to --generate")
	fs.IntVar(&c.EventBytes, "event-bytes", 1024, "approximate size of a generated event in `bytes`")
	fs.Float64Var(&c.Rate, "rate", 0, "events per second, 0 = as fast as acks allow")
	fs.StringVar(&c.MsgIDFrom, "msg-id-from", "", "set Nats-Msg-Id from data.id or uuid (data.attributes.uuid), so JetStream drops re-published duplicates; empty: none")
	fs.BoolVar(&c.Strict, "strict", false, "stop at the first line that is not valid JSON (default: publish it as is; webhookd dead-letters it)")
	fs.IntVar(&c.MaxPending, "max-pending", 4096, "unacknowledged publishes in flight")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", 30*time.Second, "how long one publish may wait for its acknowledgement")
	return fs
}

func (c *publishConfig) validate() error {
	var errs []error
	bad := func(name, value, format string, a ...any) {
		errs = append(errs, &flagError{Flag: name, Value: value, Err: fmt.Errorf(format, a...)})
	}
	if err := checkTopic(c.Topic); err != nil {
		bad("topic", c.Topic, "%v", err)
	}
	if c.Account != "" {
		if err := subscriptions.ValidateAccountID(c.Account); err != nil {
			bad("account", c.Account, "%v", err)
		}
	}
	switch {
	case c.Generate && c.Count < 1:
		bad("count", fmt.Sprint(c.Count), "--generate needs --count of at least 1")
	case !c.Generate && c.Count != 0:
		bad("count", fmt.Sprint(c.Count), "only applies with --generate")
	}
	if c.Generate && c.File != "-" {
		bad("file", c.File, "--file and --generate are exclusive")
	}
	if c.Rate < 0 {
		bad("rate", fmt.Sprint(c.Rate), "must not be negative")
	}
	if c.MsgIDFrom != "" && c.MsgIDFrom != "data.id" && c.MsgIDFrom != "uuid" {
		bad("msg-id-from", c.MsgIDFrom, "want data.id or uuid")
	}
	if c.MaxPending < 1 {
		bad("max-pending", fmt.Sprint(c.MaxPending), "must be at least 1")
	}
	if c.AckTimeout <= 0 {
		bad("ack-timeout", c.AckTimeout.String(), "must be positive")
	}
	if c.EventBytes < 0 || c.EventBytes > 512<<10 {
		bad("event-bytes", fmt.Sprint(c.EventBytes), "must be between 0 and 524288")
	}
	return errors.Join(errs...)
}

// checkTopic accepts a topic id usable as the head of a publish subject:
// literal tokens only (no wildcards, no white space, no empty tokens).
func checkTopic(t string) error {
	if t == "" {
		return errors.New("required, e.g. event:klaviyo.sent_sms")
	}
	if strings.ContainsAny(t, " \t\r\n*>") {
		return errors.New("topic may not contain white space or the wildcards * and >")
	}
	for _, tok := range strings.Split(t, ".") {
		if tok == "" {
			return errors.New("topic has an empty token")
		}
	}
	return nil
}

// publishStats counts publish outcomes; the ack callbacks run on the
// NATS client's goroutine, hence atomics.
type publishStats struct {
	sent, acked, duplicates, failed atomic.Int64
	firstErr                        atomic.Pointer[error]
}

func (s *publishStats) fail(err error) {
	s.failed.Add(1)
	s.firstErr.CompareAndSwap(nil, &err)
}

// runPublish is `webhookd publish`.
func runPublish(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg publishConfig
	fs := newPublishFlags(&cfg, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("publish: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	subject := cfg.Topic
	if cfg.Account != "" {
		subject += "." + cfg.Account
	}

	src, closeSrc, err := openInput(cfg.File, stdin)
	if err != nil {
		return err
	}
	defer closeSrc()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("webhookd-publish"))
	if err != nil {
		return &flagError{Flag: "nats-url", Value: redactURL(cfg.NATSURL), Err: err}
	}
	defer nc.Close()

	var st publishStats
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			st.acked.Add(1)
			if ack.Duplicate {
				st.duplicates.Add(1)
			}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			st.fail(err)
		}),
	)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	start := time.Now()
	pace := newPacer(cfg.Rate, start)
	next := eventSource(cfg, src)
	var readErr error
	for n := 0; ctx.Err() == nil; n++ {
		data, msgID, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if err := pace.wait(ctx, n); err != nil {
			break
		}
		var opts []jetstream.PublishOpt
		if msgID != "" {
			opts = append(opts, jetstream.WithMsgID(msgID))
		}
		st.sent.Add(1)
		if err := publishAsync(ctx, js, subject, data, opts); err != nil {
			st.fail(err)
		}
	}

	// Wait for every acknowledgement (or its ack timeout).
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	elapsed := time.Since(start)
	sent, acked, failed := st.sent.Load(), st.acked.Load(), st.failed.Load()
	rate := float64(acked) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "published %d of %d events to %s in %s (%.0f events/s), %d failed, %d duplicates dropped by JetStream\n",
		acked, sent, subject, elapsed.Round(time.Millisecond), rate, failed, st.duplicates.Load())

	switch {
	case readErr != nil:
		return readErr
	case failed > 0:
		return fmt.Errorf("%d of %d publishes failed, first: %w", failed, sent, explainPublishErr(*st.firstErr.Load(), subject))
	case acked < sent:
		return fmt.Errorf("interrupted: %d of %d publishes unacknowledged", sent-acked, sent)
	}
	return nil
}

// publishAsync publishes one message, waiting while --max-pending
// publishes await their acknowledgement: a busy server slows the
// publisher down instead of failing the message.
func publishAsync(ctx context.Context, js jetstream.JetStream, subject string, data []byte, opts []jetstream.PublishOpt) error {
	for {
		_, err := js.PublishAsync(subject, data, opts...)
		// PublishAsync already waited its stall time (200ms) for room.
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
			return err
		}
	}
}

// explainPublishErr adds the likely cause to "no stream" errors.
func explainPublishErr(err error, subject string) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no JetStream stream captures %s (is webhookd serve running, and do its --subjects cover the topic?): %w", subject, err)
	}
	return err
}

// openInput opens --file, or stdin for "-".
func openInput(name string, stdin io.Reader) (io.Reader, func(), error) {
	if name == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, &flagError{Flag: "file", Value: name, Err: err}
	}
	return f, func() { f.Close() }, nil
}

// eventSource returns the event iterator for cfg: generated events, or
// the non-empty lines of r. It returns io.EOF at the end.
func eventSource(cfg publishConfig, r io.Reader) func() (data []byte, msgID string, err error) {
	if cfg.Generate {
		g := newGenerator(cfg.EventBytes)
		left := cfg.Count
		return func() ([]byte, string, error) {
			if left == 0 {
				return nil, "", io.EOF
			}
			left--
			ev := g.next(time.Now())
			return ev.JSON, pickMsgID(cfg.MsgIDFrom, ev.ID, ev.UUID), nil
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	return func() ([]byte, string, error) {
		for sc.Scan() {
			line++
			b := sc.Bytes()
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			data := append([]byte(nil), b...) // the scanner reuses its buffer
			var ev struct {
				Data struct {
					ID         string `json:"id"`
					Attributes struct {
						UUID string `json:"uuid"`
					} `json:"attributes"`
				} `json:"data"`
			}
			if err := json.Unmarshal(data, &ev); err != nil {
				if cfg.Strict {
					return nil, "", fmt.Errorf("%s line %d: not valid JSON (--strict): %w", cfg.File, line, err)
				}
				return data, "", nil
			}
			return data, pickMsgID(cfg.MsgIDFrom, ev.Data.ID, ev.Data.Attributes.UUID), nil
		}
		if err := sc.Err(); err != nil {
			return nil, "", fmt.Errorf("%s line %d: %w", cfg.File, line+1, err)
		}
		return nil, "", io.EOF
	}
}

func pickMsgID(from, id, uuid string) string {
	switch from {
	case "data.id":
		return id
	case "uuid":
		return uuid
	}
	return ""
}

// pacer spreads publishes evenly at rate per second (0: no pacing). It
// schedules event n at start + n/rate, so a slow moment is caught up
// rather than lost.
type pacer struct {
	rate  float64
	start time.Time
}

func newPacer(rate float64, start time.Time) pacer { return pacer{rate: rate, start: start} }

func (p pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	d := time.Until(p.start.Add(time.Duration(float64(n) / p.rate * float64(time.Second))))
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
