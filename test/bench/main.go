// Command bench is `make bench`: it measures webhookd end to end with real
// processes — a nats-server and a redis-server of its own (never the
// shared ones on 4222/6379), `webhookd serve`, and `webhookd sink`
// receivers that verify every signature — and compares delivery with raw
// JetStream on the same server in the same run (issue 4).
//
// Usage:
//
//	go run ./test/bench [--full] [--only drain,latency] [size flags]
//
// A quick run (the default) takes a minute or two, --full at most ten. It
// prints one table, writes the same figures as JSON to
// bench-results/<timestamp>.json, and exits non-zero when an event was
// lost, a signature did not verify, or a scenario failed. Missed
// performance targets are reported, not failures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the size of every scenario; presets fill what no flag set.
type config struct {
	full       bool
	only, skip string
	webhookd   string
	keep       bool
	profile    bool
	profileFor time.Duration
	outDir     string
	eventBytes int
	wdFlags    []string
	partitions int

	drainEvents    int
	latencyFor     time.Duration
	rates          []float64
	fanoutWebhooks int
	fanoutEvents   int
	slowEvents     int
	deadEvents     int
	deadRounds     int
	idleWebhooks   int
	idleFor        time.Duration
	batch1Events   int
	memflatEvents  int
	memflatHold    time.Duration

	scaleWebhooks   int
	scaleFor        time.Duration
	scaleEvents     int
	scaleSample     int
	scaleDeadEvents int
}

// presets are the quick (default) and --full sizes.
var presets = map[string]config{
	"quick": {
		drainEvents: 100_000, latencyFor: 5 * time.Second, fanoutWebhooks: 100, fanoutEvents: 10_000,
		slowEvents: 30_000, deadEvents: 30_000, idleWebhooks: 1000, idleFor: 10 * time.Second,
		batch1Events: 5_000, memflatEvents: 150_000, memflatHold: 3 * time.Second,
		scaleWebhooks: 10_000, scaleFor: 30 * time.Second, scaleEvents: 100_000, scaleSample: 1000, scaleDeadEvents: 20_000,
	},
	"full": {
		drainEvents: 1_000_000, latencyFor: 20 * time.Second, fanoutWebhooks: 100, fanoutEvents: 100_000,
		slowEvents: 100_000, deadEvents: 200_000, idleWebhooks: 1000, idleFor: 30 * time.Second,
		batch1Events: 20_000, memflatEvents: 1_000_000, memflatHold: 10 * time.Second,
		scaleWebhooks: 100_000, scaleFor: 30 * time.Second, scaleEvents: 200_000, scaleSample: 1000, scaleDeadEvents: 50_000,
	},
}

// bench is one run.
type bench struct {
	cfg         config
	root        string // run directory
	bins        binaries
	ceilingRate float64
	stderr      io.Writer
	started     time.Time
}

// profilePath is where --profile saves scenario's CPU profile.
func (b *bench) profilePath(scenario string) string {
	return filepath.Join(b.cfg.outDir, b.started.UTC().Format("20060102T150405Z")+"-"+scenario+".pprof")
}

func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", a...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, strings.Fields(v)...); return nil }

func parseFlags(args []string, stderr io.Writer) (config, string, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rates string
	fs.BoolVar(&c.full, "full", false, "full sizes (1M-event drain; five to ten minutes) instead of the quick ones (about a minute and a half)")
	fs.StringVar(&c.only, "only", "", "comma list of scenarios to run: "+strings.Join(scenarioNames(), ","))
	fs.StringVar(&c.skip, "skip", "", "comma list of scenarios to leave out")
	fs.StringVar(&c.webhookd, "webhookd", "", "prebuilt webhookd `binary` (default: build ./cmd/webhookd)")
	fs.BoolVar(&c.keep, "keep", false, "keep the run directory (logs) instead of removing it")
	fs.BoolVar(&c.profile, "profile", false, "run webhookd with --metrics-addr and save a CPU profile of each backlog drain and of idle next to the JSON (go tool pprof FILE)")
	fs.DurationVar(&c.profileFor, "profile-duration", 5*time.Second, "length of each CPU profile (from the first delivery on)")
	fs.StringVar(&c.outDir, "out", "bench-results", "`directory` for the JSON results")
	fs.IntVar(&c.eventBytes, "event-bytes", 1024, "size of a generated event in `bytes`")
	fs.IntVar(&c.partitions, "partitions", 16, "webhookd serve --partitions for every scenario (0: one consumer per webhook, the earlier model, for comparison)")
	fs.Var((*stringsFlag)(&c.wdFlags), "serve-flags", "extra `flags` for every webhookd serve, space separated (e.g. \"--batch-linger 100ms\")")
	fs.IntVar(&c.drainEvents, "drain-events", 0, "backlog size of the ceiling and drain scenarios (quick 100k, full 1M)")
	fs.DurationVar(&c.latencyFor, "latency-duration", 0, "publishing time per latency rate (quick 5s, full 20s)")
	fs.StringVar(&rates, "rates", "1000,10000", "comma list of latency publish rates, events/s")
	fs.IntVar(&c.fanoutWebhooks, "fanout-webhooks", 0, "fan-out webhooks, ten per account (100)")
	fs.IntVar(&c.fanoutEvents, "fanout-events", 0, "fan-out events, each to its account's ten webhooks (quick 10k, full 100k)")
	fs.IntVar(&c.slowEvents, "slow-events", 0, "slow-endpoint backlog (quick 30k, full 100k)")
	fs.IntVar(&c.deadEvents, "dead-events", 0, "dead-neighbour backlog per phase (quick 30k, full 200k)")
	fs.IntVar(&c.deadRounds, "dead-rounds", 2, "dead-neighbour rounds, each one drain alone and one next to the dead webhook")
	fs.IntVar(&c.idleWebhooks, "idle-webhooks", 0, "idle webhooks, ten per account (1000)")
	fs.DurationVar(&c.idleFor, "idle-duration", 0, "idle measuring window (quick 10s, full 30s)")
	fs.IntVar(&c.batch1Events, "batch1-events", 0, "batch-size-1 backlog (quick 5k, full 20k)")
	fs.IntVar(&c.memflatEvents, "memflat-events", 0, "backlog for the dead-endpoint memory check (quick 150k, full 1M)")
	fs.DurationVar(&c.memflatHold, "memflat-hold", 0, "how long the memory check goes on after publishing (quick 3s, full 10s)")
	fs.IntVar(&c.scaleWebhooks, "scale-webhooks", 0, "scale scenario: webhooks, ten per account (quick 10k, full 100k)")
	fs.DurationVar(&c.scaleFor, "scale-duration", 0, "scale scenario: idle and rename measuring windows (30s)")
	fs.IntVar(&c.scaleEvents, "scale-events", 0, "scale scenario: events of each per-event cost backlog (quick 100k, full 200k)")
	fs.IntVar(&c.scaleSample, "scale-sample", 0, "scale scenario: webhooks that must deliver after a restart (1000)")
	fs.IntVar(&c.scaleDeadEvents, "scale-dead-events", 0, "scale scenario: dead-neighbour backlog per phase (quick 20k, full 50k; -1 skips it)")
	if err := fs.Parse(args); err != nil {
		return c, "", err
	}
	if c.partitions < 0 || c.partitions > 256 {
		return c, "", fmt.Errorf("--partitions %d: want 0-256", c.partitions)
	}
	if slices.Contains(c.wdFlags, "--partitions") {
		return c, "", errors.New("--serve-flags: set --partitions with the bench's own flag (it watches the consumers of that model)")
	}
	if fs.NArg() > 0 {
		return c, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	preset := "quick"
	if c.full {
		preset = "full"
	}
	p := presets[preset]
	fill := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	fillD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	fill(&c.drainEvents, p.drainEvents)
	fillD(&c.latencyFor, p.latencyFor)
	fill(&c.fanoutWebhooks, p.fanoutWebhooks)
	fill(&c.fanoutEvents, p.fanoutEvents)
	fill(&c.slowEvents, p.slowEvents)
	fill(&c.deadEvents, p.deadEvents)
	fill(&c.idleWebhooks, p.idleWebhooks)
	fillD(&c.idleFor, p.idleFor)
	fill(&c.batch1Events, p.batch1Events)
	fill(&c.memflatEvents, p.memflatEvents)
	fillD(&c.memflatHold, p.memflatHold)
	fill(&c.scaleWebhooks, p.scaleWebhooks)
	fillD(&c.scaleFor, p.scaleFor)
	fill(&c.scaleEvents, p.scaleEvents)
	fill(&c.scaleSample, p.scaleSample)
	if c.scaleDeadEvents == 0 {
		c.scaleDeadEvents = p.scaleDeadEvents
	}
	for r := range strings.SplitSeq(rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || v <= 0 {
			return c, "", fmt.Errorf("--rates: bad rate %q", r)
		}
		c.rates = append(c.rates, v)
	}
	for _, list := range []string{c.only, c.skip} {
		for n := range strings.SplitSeq(list, ",") {
			if n != "" && !slices.Contains(scenarioNames(), n) {
				return c, "", fmt.Errorf("unknown scenario %q (want %s)", n, strings.Join(scenarioNames(), ","))
			}
		}
	}
	return c, preset, nil
}

func (c config) selected(name string) bool {
	in := func(list string) bool { return slices.Contains(strings.Split(list, ","), name) }
	return (c.only == "" || in(c.only)) && !in(c.skip)
}

func (c config) asMap() map[string]any {
	return map[string]any{
		"event_bytes": c.eventBytes, "serve_flags": c.wdFlags, "partitions": c.partitions, "drain_events": c.drainEvents,
		"latency_duration": c.latencyFor.String(), "rates": c.rates, "fanout_webhooks": c.fanoutWebhooks,
		"fanout_events": c.fanoutEvents, "slow_events": c.slowEvents, "dead_events": c.deadEvents, "dead_rounds": c.deadRounds,
		"idle_webhooks": c.idleWebhooks, "idle_duration": c.idleFor.String(), "batch1_events": c.batch1Events,
		"memflat_events": c.memflatEvents, "memflat_hold": c.memflatHold.String(),
		"scale_webhooks": c.scaleWebhooks, "scale_duration": c.scaleFor.String(), "scale_events": c.scaleEvents,
		"scale_sample": c.scaleSample, "scale_dead_events": c.scaleDeadEvents,
	}
}

// run is the whole bench; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, preset, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	started := time.Now()
	b := &bench{cfg: cfg, stderr: stderr, started: started}
	if cfg.profile {
		if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	root, err := os.MkdirTemp("", "webhookd-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	b.root = root
	defer func() {
		if cfg.keep {
			b.logf("run directory kept: %s", root)
			return
		}
		_ = os.RemoveAll(root)
	}()

	mach := describeMachine()
	b.logf("machine: %s", mach)
	b.logf("building webhookd and nats-server into %s", root)
	wd, ns, err := buildBinaries(ctx, root, cfg.webhookd)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Fprintln(stderr, "bench: redis-server not found (make deps installs it)")
		return 1
	}
	b.bins = binaries{webhookd: wd, nats: ns, redis: redis}

	var rows []*result
	var failures []string
	for _, s := range scenarios {
		if !cfg.selected(s.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t := time.Now()
		b.logf("== %s", s.name)
		got, err := s.run(b, ctx)
		if err != nil {
			b.logf("%s: %v", s.name, err)
			failures = append(failures, fmt.Sprintf("%s: %v", s.name, err))
			got = append(got, &result{Scenario: s.name, Error: err.Error(), LostNA: true})
		}
		for _, r := range got {
			r.flagNoise()
			b.logf("   %-22s %s ev/s  lost %d  (%.1fs)", r.Scenario, rate(r.EventsPerSec), r.Lost, time.Since(t).Seconds())
			if r.failed() && r.Error == "" {
				failures = append(failures, fmt.Sprintf("%s: %d lost, %d bad signatures, %d mismatches, %d malformed",
					r.Scenario, r.Lost, r.BadSignatures, r.Mismatches, r.Malformed))
			}
		}
		rows = append(rows, got...)
	}
	if ctx.Err() != nil {
		failures = append(failures, "interrupted")
	}

	fmt.Fprintf(stdout, "\nwebhookd bench (%s) on %s\n\n", preset, mach)
	printTable(stdout, rows)
	fmt.Fprintln(stdout)
	printNotes(stdout, rows)
	printScale(stdout, rows)
	rep := report{
		Started: started, Seconds: time.Since(started).Seconds(), Command: commandLine(args), Preset: preset,
		Config: cfg.asMap(), Machine: mach, Ceiling: b.ceilingRate, Results: rows, Failures: failures,
	}
	path, err := writeJSON(cfg.outDir, rep)
	if err != nil {
		fmt.Fprintln(stderr, "bench: writing results:", err)
	} else {
		abs, _ := filepath.Abs(path)
		fmt.Fprintf(stdout, "\nresults: %s (%.0fs)\n", abs, rep.Seconds)
	}
	if len(failures) > 0 {
		fmt.Fprintln(stdout, "\nFAILED:")
		for _, f := range failures {
			fmt.Fprintln(stdout, "  "+f)
		}
		return 1
	}
	return 0
}

func commandLine(args []string) string {
	if len(args) == 0 {
		return "make bench"
	}
	return "make bench BENCHARGS='" + strings.Join(args, " ") + "'"
}
