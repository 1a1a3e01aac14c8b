package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/api/clientaddr"
	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// serveConfig is the configuration of `webhookd serve`, read from flags
// and their WEBHOOKD_* environment twins (flags win). Defaults and
// meanings are DESIGN.md's configuration table; see newServeFlags.
// minAdminKeyLen is the shortest operator key serve accepts.
const minAdminKeyLen = 16

type serveConfig struct {
	HTTPAddr       string
	MetricsAddr    string // empty: no metrics listener
	NATSURL        string // empty: embedded nats-server
	NATSListen     string
	NATSSyncAlways bool
	RedisURL       string // empty: managed redis-server
	DataDir        string

	APIKeys    []string // KEY=ACCOUNT entries
	APIKeysEnv bool     // APIKeys came from WEBHOOKD_API_KEYS
	AdminKey   string   // the console's operator key; "" = no operator sign-in

	DefaultAccount         string
	AllowInsecureEndpoints bool
	Subjects               []string
	StreamReplicas         int
	MaxWebhooksPerAccount  int
	APIRateLimit           float64
	APIRateBurst           int
	AuthFailBurst          int           // bad keys per client address at once; 0: no limit
	AuthFailRefill         time.Duration // one more bad key per address after this
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client; none: the TCP peer is the client.
	TrustedProxies clientaddr.Proxies

	DeliveryTimeout time.Duration
	MaxInFlight     int
	BatchMaxEvents  int
	BatchMaxBytes   byteSize
	BatchLinger     time.Duration
	BackoffBase     time.Duration
	BackoffMax      time.Duration
	DisableAfter    time.Duration
	SemaphoreLease  time.Duration

	MaxBufferedBytes byteSize
	AdoptRegistry    bool
	Partitions       int

	FlowFlags

	Activity          bool // record every request in the attempt log
	ActivityRetention time.Duration
	ActivityMaxBytes  byteSize
	OpsURL            string // empty: operator events only on NATS
	OpsSecret         string // signs operator POSTs; never logged or echoed

	LogLevel  string
	LogFormat string

	// HTTPAddrDefault and NATSListenDefault are true when --http-addr and
	// --nats-listen were left at their defaults (neither flag nor env):
	// then a port already taken is replaced by a free one (serve says
	// so) instead of failing the first `make run`.
	HTTPAddrDefault   bool
	NATSListenDefault bool
}

// Limits of the validated values, with the reason for each.
const (
	// maxBatchEvents is Klaviyo's documented batch size; receivers written
	// against Klaviyo reject more (reference §7.4).
	maxBatchEvents = 1000
	// maxInFlightLimit bounds --max-in-flight: more than this per webhook
	// is a denial of service on the receiver, not a tuning knob.
	maxInFlightLimit = 1000
	// minBatchBytes and maxBatchBytes bound --batch-max-bytes: below 1 KiB
	// hardly one event fits; above 64 MiB receivers and proxies refuse.
	minBatchBytes = 1 << 10
	maxBatchBytes = 64 << 20
	// minActivityBytes bounds --activity-max-bytes: below 1 MiB the log
	// holds a few thousand attempts, less than one busy minute.
	minActivityBytes = 1 << 20
)

// newServeFlags returns the FlagSet of `serve`, writing into cfg. The
// defaults are DESIGN.md's; the choices it leaves open are explained in
// the usage text.
func newServeFlags(cfg *serveConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: webhookd serve [flags]\n\n"+
			"Serves the Webhooks API and delivers events. Every flag has an environment twin\n"+
			"WEBHOOKD_<FLAG> (upper case, dashes as underscores); flags win. --api-key's twin is\n"+
			"WEBHOOKD_API_KEYS, a comma list of KEY=ACCOUNT.\n\n")
		fs.PrintDefaults()
	}
	cfg.BatchMaxBytes = batcher.DefaultMaxBytes
	cfg.Subjects = []string{dispatcher.DefaultSubject}

	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "API listen `address` (host:port)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "listen `address` for Prometheus /metrics and /debug/pprof/ (keep it private); empty: off")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "external NATS `URL`s (comma list); empty starts an embedded JetStream server")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "client `address` of the embedded NATS server (host:port; port 0 picks a free one)")
	fs.BoolVar(&cfg.NATSSyncAlways, "nats-sync-always", true, "embedded NATS fsyncs every write (default on: a single node otherwise loses up to 2 min of acknowledged events on power loss; turn off for benchmarks)")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "external Redis `URL` (redis://, rediss://, unix://); empty starts and supervises a local redis-server")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "`directory` for the embedded NATS store and the managed Redis files (AOF on)")
	fs.Var((*stringList)(&cfg.APIKeys), "api-key", "API key as `KEY=ACCOUNT`, repeatable; none given: the key kept in <data-dir>/api-key (generated on the first start) serves --default-account")
	fs.StringVar(&cfg.AdminKey, "admin-key", "", "operator `key` of the web console (/console/), at least 16 characters: every account, read and act; keep it secret (prefer the env twin WEBHOOKD_ADMIN_KEY); empty: no operator sign-in")
	fs.StringVar(&cfg.DefaultAccount, "default-account", "default", "`account` of events published on a bare topic subject")
	fs.BoolVar(&cfg.AllowInsecureEndpoints, "allow-insecure-endpoints", false, "permit http:// and loopback/private endpoints (local development, tests)")
	fs.Var((*commaList)(&cfg.Subjects), "subjects", "JetStream stream `subjects`, comma list; the first token must be literal (NATS cannot capture > or *.>)")
	fs.IntVar(&cfg.StreamReplicas, "stream-replicas", 1, "JetStream replicas of the event and dead-letter streams, 1-5 (3 on a NATS cluster); applied at start-up, also to existing streams")
	fs.Float64Var(&cfg.APIRateLimit, "api-rate-limit", 10, "API requests per second per account, steady; beyond it and --api-rate-burst: 429 throttled (Klaviyo's own tier is 0.25); 0: no limit")
	fs.IntVar(&cfg.APIRateBurst, "api-rate-burst", 20, "API requests per account allowed at once above --api-rate-limit")
	fs.IntVar(&cfg.AuthFailBurst, "auth-fail-burst", 10, "bad API keys (API and console sign-in) one client address may present at once; past it and --auth-fail-refill: 429, even for a good key; 0: no limit")
	fs.DurationVar(&cfg.AuthFailRefill, "auth-fail-refill", 6*time.Second, "an address past --auth-fail-burst may present one more key after this `duration`")
	fs.Var((*proxiesFlag)(&cfg.TrustedProxies), "trusted-proxies", "reverse proxies (comma list of `CIDRs` and IP addresses) whose X-Forwarded-For names the client for --auth-fail-burst: the right-most address not itself trusted; empty: none, every client is its TCP peer")
	fs.IntVar(&cfg.MaxWebhooksPerAccount, "max-webhooks-per-account", 10, "webhooks per account (Klaviyo's limit)")

	fs.DurationVar(&cfg.DeliveryTimeout, "delivery-timeout", 5*time.Second, "whole-request `deadline` of a delivery (Klaviyo: 5s)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 10, "concurrent requests per webhook across replicas, 1-1000")
	fs.IntVar(&cfg.BatchMaxEvents, "batch-max-events", 1000, "events per request, 1-1000")
	fs.Var(&cfg.BatchMaxBytes, "batch-max-bytes", fmt.Sprintf("body size cap per request: plain bytes (%d) or with a unit (%s, 512KiB, 1MB)", batcher.DefaultMaxBytes, cfg.BatchMaxBytes.String()))
	fs.DurationVar(&cfg.BatchLinger, "batch-linger", 200*time.Millisecond, "how long a partial batch waits for more events (latency vs. requests)")
	fs.DurationVar(&cfg.BackoffBase, "backoff-base", time.Second, "first retry delay; doubles per failure")
	fs.DurationVar(&cfg.BackoffMax, "backoff-max", time.Hour, "retry delay cap")
	fs.DurationVar(&cfg.DisableAfter, "disable-after", 48*time.Hour, "continuous error time before a webhook is disabled")
	cfg.MaxBufferedBytes = dispatcher.DefaultMaxBufferedBytes
	fs.Var(&cfg.MaxBufferedBytes, "max-buffered-bytes", "bytes of fetched events a replica holds at once across all webhooks, at least --batch-max-bytes (256MiB)")
	fs.IntVar(&cfg.Partitions, "partitions", 16, "event partitions, 1-256, each consumed by one replica at a time (README, Operations); 0: one consumer per webhook, the earlier model. Fixed for the life of the event stream")
	fs.BoolVar(&cfg.AdoptRegistry, "adopt-registry", false, "accept the registry found in Redis even though it is not the one this deployment delivered for (after a deliberate replacement; see README, Operations)")
	fs.DurationVar(&cfg.SemaphoreLease, "semaphore-lease", 30*time.Second, "lease of an in-flight slot, at least 2×--delivery-timeout + --batch-linger + 1s (a crashed replica's slots return after it)")

	cfg.register(fs)
	fs.BoolVar(&cfg.Activity, "activity", true, "record every delivery request in the attempt log (GET /webhookd/webhooks/{id}/attempts); off only to compare costs")
	fs.DurationVar(&cfg.ActivityRetention, "activity-retention", activity.DefaultRetention, "how long the attempt log keeps an attempt (at least 1m)")
	cfg.ActivityMaxBytes = activity.DefaultMaxBytes
	fs.Var(&cfg.ActivityMaxBytes, "activity-max-bytes", "disk cap of the attempt log, at least 1MiB; the oldest attempts go first (1GiB: about 14M one-event attempts)")

	fs.StringVar(&cfg.OpsURL, "ops-url", "", "operator endpoint `URL`: every operator event (README, Operator events) is also POSTed there, signed with --ops-secret; empty: NATS only")
	fs.StringVar(&cfg.OpsSecret, "ops-secret", "", "HMAC `key` signing the POSTs to --ops-url (required with it; prefer the WEBHOOKD_OPS_SECRET twin: flags show in ps)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&cfg.LogFormat, "log-format", "json", "log `format`: json or console")
	return fs
}

// parseServeConfig parses the arguments of `serve` and the environment,
// then validates the result. Every error names the flag at fault and the
// value tried. It returns flag.ErrHelp for -h.
func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var cfg serveConfig
	fs := newServeFlags(&cfg, stderr)
	if err := parseFlags(fs, args, stderr); err != nil {
		return cfg, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fromEnv, err := applyEnv(fs, getenv, "api-key")
	if err != nil {
		return cfg, err
	}
	cfg.HTTPAddrDefault = !given["http-addr"] && fromEnv["http-addr"] == ""
	cfg.NATSListenDefault = !given["nats-listen"] && fromEnv["nats-listen"] == ""
	if len(cfg.APIKeys) == 0 {
		if v := getenv("WEBHOOKD_API_KEYS"); v != "" {
			cfg.APIKeys, cfg.APIKeysEnv = splitComma(v), true
		}
	}
	return cfg, cfg.validate(fromEnv)
}

// validate checks every value; errors name their flag (see flagError).
// It is one flat list of rules, one or two lines each, in flag order.
func (c *serveConfig) validate(fromEnv map[string]string) error {
	var errs []error
	bad := func(name, value string, format string, a ...any) {
		errs = append(errs, &flagError{Flag: name, Value: value, Env: fromEnv[name], Err: fmt.Errorf(format, a...)})
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			bad(name, d.String(), "must be positive")
		}
	}
	between := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(name, strconv.Itoa(v), "must be between %d and %d", lo, hi)
		}
	}

	if err := checkHostPort(c.HTTPAddr); err != nil {
		bad("http-addr", c.HTTPAddr, "%v", err)
	}
	if c.MetricsAddr != "" {
		if err := checkHostPort(c.MetricsAddr); err != nil {
			bad("metrics-addr", c.MetricsAddr, "%v", err)
		}
	}
	if c.NATSURL == "" {
		if err := checkHostPort(c.NATSListen); err != nil {
			bad("nats-listen", c.NATSListen, "%v", err)
		}
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			bad("redis-url", redactURL(c.RedisURL), "%v", withoutSecrets(err, c.RedisURL))
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", c.DataDir, "must not be empty")
	}
	if err := subscriptions.ValidateAccountID(c.DefaultAccount); err != nil {
		bad("default-account", c.DefaultAccount, "%v", err)
	}
	if len(c.Subjects) == 0 {
		bad("subjects", "", "want at least one stream subject, e.g. event:klaviyo.>")
	}
	for _, s := range c.Subjects {
		if err := dispatcher.CheckStreamSubject(s); err != nil {
			bad("subjects", s, "%v", err)
		}
	}
	between("stream-replicas", c.StreamReplicas, 1, 5)
	if c.APIRateLimit < 0 {
		bad("api-rate-limit", strconv.FormatFloat(c.APIRateLimit, 'g', -1, 64), "must not be negative (0: no limit)")
	}
	between("api-rate-burst", c.APIRateBurst, 1, 1_000_000)
	between("auth-fail-burst", c.AuthFailBurst, 0, 1_000_000)
	positive("auth-fail-refill", c.AuthFailRefill)
	between("max-webhooks-per-account", c.MaxWebhooksPerAccount, 1, 1_000_000)

	positive("delivery-timeout", c.DeliveryTimeout)
	between("max-in-flight", c.MaxInFlight, 1, maxInFlightLimit)
	between("batch-max-events", c.BatchMaxEvents, 1, maxBatchEvents)
	if c.BatchMaxBytes < minBatchBytes || c.BatchMaxBytes > maxBatchBytes {
		bad("batch-max-bytes", c.BatchMaxBytes.String(), "must be between 1KiB and 64MiB")
	}
	positive("batch-linger", c.BatchLinger)
	positive("backoff-base", c.BackoffBase)
	positive("backoff-max", c.BackoffMax)
	if c.BackoffBase > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffBase {
		bad("backoff-max", c.BackoffMax.String(), "must be at least --backoff-base (%s)", c.BackoffBase)
	}
	positive("disable-after", c.DisableAfter)
	positive("semaphore-lease", c.SemaphoreLease)
	between("partitions", c.Partitions, 0, 256)
	if c.MaxBufferedBytes < c.BatchMaxBytes {
		bad("max-buffered-bytes", c.MaxBufferedBytes.String(), "must be at least --batch-max-bytes (%s): one batch must fit", c.BatchMaxBytes.String())
	}
	// The dispatcher holds a slot across the linger and up to two request
	// deadlines; a shorter lease could expire while its request is in
	// flight and let more than --max-in-flight run.
	if minLease := dispatcher.MinLease(c.DeliveryTimeout, c.BatchLinger); c.SemaphoreLease > 0 && c.SemaphoreLease < minLease {
		bad("semaphore-lease", c.SemaphoreLease.String(),
			"must be at least 2×--delivery-timeout + --batch-linger + 1s (%s), or a slot could expire while its request is in flight", minLease)
	}

	c.check(bad)
	if c.ActivityRetention < time.Minute {
		bad("activity-retention", c.ActivityRetention.String(), "must be at least 1m")
	}
	if c.ActivityMaxBytes < minActivityBytes {
		bad("activity-max-bytes", c.ActivityMaxBytes.String(), "must be at least 1MiB")
	}
	if c.OpsURL != "" {
		if u, err := url.Parse(c.OpsURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("ops-url", redactURL(c.OpsURL), "want an absolute http or https URL")
		}
		if c.OpsSecret == "" {
			bad("ops-secret", "", "required with --ops-url: operator events are signed")
		}
	} else if c.OpsSecret != "" {
		bad("ops-secret", "(hidden)", "set without --ops-url: nothing would use it")
	}

	if c.AdminKey != "" && len(c.AdminKey) < minAdminKeyLen {
		// Never echo the key, not even a short one.
		bad("admin-key", "(hidden)", "must be at least %d characters: it opens every account", minAdminKeyLen)
	}

	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level", c.LogLevel, "%v", err)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("log-format", c.LogFormat, "want json or console")
	}
	return errors.Join(errs...)
}

// keyring builds the API keyring. With no keys configured it uses the
// key kept in the data directory for the default account, generating
// (and keeping) one on the first start, and returns it for the banner.
func (c *serveConfig) keyring() (keys *subscriptions.Keyring, generated kept, err error) {
	if len(c.APIKeys) == 0 {
		generated = keepGenerated(c.DataDir, apiKeyFile, subscriptions.GenerateKey)
		keys, err = subscriptions.NewKeyring(map[string]string{generated.Value: c.DefaultAccount})
		if err != nil {
			return nil, kept{}, fmt.Errorf("the API key in %s: %w (delete the file for a new one)", generated.Path, err)
		}
		return keys, generated, nil
	}
	keys, err = subscriptions.ParseKeys(c.APIKeys)
	if err != nil {
		// ParseKeys names entries by position and account, never by key,
		// so its error can be shown as it is.
		src := "--api-key"
		if c.APIKeysEnv {
			src = "WEBHOOKD_API_KEYS"
		}
		return nil, kept{}, fmt.Errorf("%s: %w", src, err)
	}
	return keys, kept{}, nil
}

// checkHostPort accepts host:port with a numeric port (host may be empty:
// every interface).
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// parseLevel is zerolog.ParseLevel without its acceptance of "" and
// numeric levels.
func parseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "trace", "debug", "info", "warn", "error":
		return zerolog.ParseLevel(s)
	}
	return zerolog.NoLevel, errors.New("want debug, info, warn or error")
}
