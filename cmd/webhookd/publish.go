package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/webhookd/webhookd/cmd/webhookd/internal/publish"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/subscriptions"
)

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

// newPublishFlags returns the FlagSet of `publish`, writing into c.
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
	fs.StringVar(&c.MsgIDFrom, "msg-id-from", publish.MsgIDDataID, "set Nats-Msg-Id from data.id or uuid (data.attributes.uuid), so JetStream drops an event published twice within its 2-minute window; none: no message id (an event without the field gets none either way)")
	fs.BoolVar(&c.Strict, "strict", false, "stop at the first line that is not valid JSON (default: publish it as is; webhookd dead-letters it)")
	fs.IntVar(&c.MaxPending, "max-pending", publish.DefaultMaxPending, "unacknowledged publishes in flight")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", publish.DefaultAckTimeout, "how long one publish may wait for its acknowledgement")
	return fs
}

// validate checks every value; errors name their flag (see flagError).
func (c *publishConfig) validate() error {
	var errs []error
	bad := func(name, value, format string, a ...any) {
		errs = append(errs, &flagError{Flag: name, Value: value, Err: fmt.Errorf(format, a...)})
	}
	if err := dispatcher.CheckTopic(c.Topic); err != nil {
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
	if c.MsgIDFrom != publish.MsgIDNone && c.MsgIDFrom != publish.MsgIDDataID && c.MsgIDFrom != publish.MsgIDUUID {
		bad("msg-id-from", c.MsgIDFrom, "want data.id, uuid or none")
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

// runPublish is `webhookd publish`.
func runPublish(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg publishConfig
	fs := newPublishFlags(&cfg, stderr)
	if err := parseFlags(fs, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	subject := cfg.Topic
	if cfg.Account != "" {
		subject += "." + cfg.Account
	}
	events := publish.Generate(cfg.Count, cfg.EventBytes, cfg.MsgIDFrom)
	if !cfg.Generate {
		src, closeSrc, err := openInput(cfg.File, stdin)
		if err != nil {
			return err
		}
		defer closeSrc()
		events = publish.Lines(src, cfg.File, cfg.Strict, cfg.MsgIDFrom)
	}

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("webhookd-publish"))
	if err != nil {
		return &flagError{Flag: "nats-url", Value: redactURL(cfg.NATSURL), Err: err}
	}
	defer nc.Close()
	rep, err := publish.Run(ctx, nc, publish.Config{
		Subject: subject, Events: events, Rate: cfg.Rate, MaxPending: cfg.MaxPending, AckTimeout: cfg.AckTimeout,
	})
	fmt.Fprintln(stdout, rep)
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
