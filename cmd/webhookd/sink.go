package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/cmd/webhookd/internal/sink"
)

// sinkConfig is the configuration of `webhookd sink`: sink.Config and the
// listen address.
type sinkConfig struct {
	Addr    string
	Sink    sink.Config
	MaxBody byteSize // Sink.MaxBody, as a size flag
}

// newSinkFlags returns the FlagSet of `sink`, writing into c.
func newSinkFlags(c *sinkConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "usage: webhookd sink --secret SECRET [flags]\n\n"+
			"A receiving endpoint for development, tests and benchmarks. Every POST (any path\n"+
			"but /stats) is a delivery: its Klaviyo-Signature is verified, its Klaviyo-Webhook-Id\n"+
			"compared with meta.klaviyo_webhook_id, and its events counted and deduplicated.\n"+
			"GET /stats returns the counts as JSON; POST /stats/reset or DELETE /stats returns\n"+
			"them and starts over. On SIGINT/SIGTERM it prints a summary line and exits.\n\n")
		fs.PrintDefaults()
	}
	c.MaxBody = sink.DefaultMaxBody
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:9000", "listen `address`; port 0 picks a free one (printed on start)")
	fs.Func("secret", "webhook `secret` to verify signatures with; repeat it, or give a comma list, for several webhooks (any that verifies accepts)", func(v string) error {
		if v == "" {
			return errors.New("empty secret")
		}
		c.Sink.Secrets = appendSecret(c.Sink.Secrets, v)
		return nil
	})
	fs.BoolVar(&c.Sink.NoVerify, "no-verify", false, "accept requests without checking signatures")
	fs.IntVar(&c.Sink.Status, "status", http.StatusOK, "HTTP `status` to answer accepted requests with; other than 200, 201 or 202 makes them rejected")
	fs.DurationVar(&c.Sink.Delay, "delay", 0, "hold each delivery this long before answering")
	fs.Float64Var(&c.Sink.FailRate, "fail-rate", 0, "`fraction` (0 to 1) of deliveries to fail on purpose")
	fs.StringVar(&c.Sink.FailMode, "fail-mode", "mixed", "how to fail: 5xx (answer 503), timeout (hold 10s), reset (TCP RST) or mixed")
	fs.Var(&c.MaxBody, "max-body", "largest body `size` accepted, e.g. 32MiB; larger ones get 413")
	fs.BoolVar(&c.Sink.Quiet, "quiet", false, "log nothing per request (by default one line per batch — accepted or rejected, events, status, latency — and refused requests, at most one line a second)")
	return fs
}

// appendSecret adds v and, if it is a comma list, each of its elements
// to secrets: a secret may itself hold commas, so both readings are
// candidates (one more HMAC for the first request of each webhook).
func appendSecret(secrets []string, v string) []string {
	for _, s := range append([]string{v}, strings.Split(v, ",")...) {
		if s != "" && !slices.Contains(secrets, s) {
			secrets = append(secrets, s)
		}
	}
	return secrets
}

// validate checks every value; errors name their flag (see flagError).
func (c *sinkConfig) validate() error {
	var errs []error
	bad := func(name, value, format string, a ...any) {
		errs = append(errs, &flagError{Flag: name, Value: value, Err: fmt.Errorf(format, a...)})
	}
	if err := checkHostPort(c.Addr); err != nil {
		bad("addr", c.Addr, "%v", err)
	}
	switch {
	case len(c.Sink.Secrets) == 0 && !c.Sink.NoVerify:
		bad("secret", "", "required (or --no-verify to accept any signature)")
	case len(c.Sink.Secrets) > 0 && c.Sink.NoVerify:
		bad("no-verify", "true", "--secret and --no-verify are exclusive")
	}
	if c.Sink.Status < 200 || c.Sink.Status > 599 {
		bad("status", strconv.Itoa(c.Sink.Status), "must be an HTTP status from 200 to 599")
	}
	if c.Sink.Delay < 0 {
		bad("delay", c.Sink.Delay.String(), "must not be negative")
	}
	if !(c.Sink.FailRate >= 0 && c.Sink.FailRate <= 1) {
		bad("fail-rate", fmt.Sprint(c.Sink.FailRate), "must be between 0 and 1")
	}
	if !slices.Contains(sink.FailModes, c.Sink.FailMode) {
		bad("fail-mode", c.Sink.FailMode, "want one of %s", strings.Join(sink.FailModes, ", "))
	}
	if c.MaxBody < 1<<10 || c.MaxBody > 1<<30 {
		bad("max-body", fmt.Sprint(int64(c.MaxBody)), "must be between 1KiB and 1GiB")
	}
	return errors.Join(errs...)
}

// runSink is `webhookd sink`. It prints "sink listening on http://ADDR"
// as the first line of stdout once the port is bound (scripts pass
// --addr 127.0.0.1:0 and read it), serves until ctx is done, then prints
// the summary line.
func runSink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg sinkConfig
	fs := newSinkFlags(&cfg, stderr)
	if err := parseFlags(fs, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	cfg.Sink.MaxBody = int64(cfg.MaxBody)
	// Plain console lines: the sink is watched in a terminal or its
	// output kept in a file by a benchmark, where colour codes are noise.
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: true}).With().Timestamp().Logger()
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return &flagError{Flag: "addr", Value: cfg.Addr, Err: err}
	}
	s := sink.New(cfg.Sink, log)
	_, _ = fmt.Fprintf(stdout, "sink listening on http://%s\n", ln.Addr())
	if f, ok := stdout.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	err = s.Run(ctx, ln)
	if ctx.Err() != nil { // stopped as asked, not failed at the start
		_, _ = fmt.Fprintln(stdout, s.Summary().Line())
	}
	return err
}
