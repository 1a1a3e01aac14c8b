package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/webhookd/webhookd/api"
	"github.com/webhookd/webhookd/cmd/webhookd/internal/metrics"
	"github.com/webhookd/webhookd/cmd/webhookd/internal/natsembed"
	"github.com/webhookd/webhookd/cmd/webhookd/internal/redisproc"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	dflows "github.com/webhookd/webhookd/dispatcher/flows"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

const (
	// httpShutdownTimeout is how long API requests in progress get to
	// finish once shutdown starts; API calls are single Redis round trips.
	httpShutdownTimeout = 10 * time.Second
	// natsDrainTimeout bounds draining webhookd's NATS connection (acks
	// of the last deliveries) before it is closed regardless.
	natsDrainTimeout = 10 * time.Second
)

// runServe is `webhookd serve`: the Webhooks API and the dispatcher, with
// an embedded NATS and a managed Redis unless external ones are given.
//
// Start-up order: config → managed redis → embedded NATS → NATS client →
// API listener. Everything that can fail (a busy port, a wrong URL, a
// missing redis-server) fails here, before anything is served.
//
// Shutdown order, on SIGINT/SIGTERM or when any part fails:
//  1. the HTTP servers (API, metrics) stop accepting and finish requests in
//     progress (at most httpShutdownTimeout); concurrently
//  2. the dispatcher and flow delivery drain: they pull nothing new, and deliveries in
//     flight finish within --delivery-timeout and are acked or handed back
//     (it still needs NATS and Redis, which is why they stop later); then
//     the attempt log writer publishes what it still holds, so the last
//     deliveries' attempts are kept;
//  3. the NATS connection drains (flushes the last acks) and closes;
//  4. the embedded nats-server shuts down, flushing its store;
//  5. the managed redis-server gets SIGTERM (fsyncs its AOF) and exits.
//
// Steps 3–5 are deferred in reverse start order, so they also run when
// start-up fails half-way. It is long because it is the wiring, read top
// to bottom in start order; splitting it would scatter the defers that
// make the shutdown order.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	keys, generatedKey, err := cfg.keyring()
	if err != nil {
		return err
	}

	rdb, redisDesc, err := openRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if rdb.managed != nil {
		defer rdb.managed.Stop() // step 5
	}

	natsURL, natsDesc := cfg.NATSURL, "external"
	var natsOpts []nats.Option
	var portNotes []string
	if cfg.NATSURL == "" {
		storeDir := filepath.Join(cfg.DataDir, "nats")
		var note string
		cfg.NATSListen, note = natsListenAddr(ctx, cfg)
		portNotes = appendNote(portNotes, note)
		ns, err := startNATS(cfg, storeDir, log)
		if err != nil {
			return err
		}
		defer ns.Shutdown() // step 4
		natsURL = ns.ClientURL()
		natsDesc = fmt.Sprintf("embedded JetStream, store %s, sync-always %t", storeDir, cfg.NATSSyncAlways)
		natsOpts = append(natsOpts, ns.ConnectOption())
		log.Info().Str("url", natsURL).Str("dir", storeDir).Msg("embedded nats-server started")
	}
	nc, err := connectNATS("nats-url", natsURL, log, natsOpts...)
	if err != nil {
		return err
	}
	defer drainNATS(nc, natsDrainTimeout) // step 3
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	store := subscriptions.New(rdb.Client, subscriptions.Config{MaxWebhooksPerAccount: cfg.MaxWebhooksPerAccount})
	met := metrics.New()
	dcfg := cfg.dispatcherConfig()
	dcfg.Observer = met
	var attempts *activity.Writer
	if cfg.Activity {
		acfg := cfg.activityConfig(met)
		if err := activity.Ensure(ctx, js, acfg); err != nil {
			return err
		}
		attempts = activity.NewWriter(acfg, js, log.With().Str("component", "activity").Logger())
		dcfg.Activity = attempts
	}
	disp, err := dispatcher.New(dcfg, js, store, log.With().Str("component", "dispatcher").Logger())
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	met.Register(disp)
	met.RegisterRecovery(disp)
	limiter := api.NewLimiter(cfg.APIRateLimit, cfg.APIRateBurst)
	authLimit := newAuthLimit(cfg, log)
	met.RegisterAuthLimit(authLimit)
	var reader *activity.Reader // nil: the attempt log is off
	if attempts != nil {
		reader = activity.NewReader(cfg.activityConfig(met), js)
	}
	flowStore := flows.NewStore(rdb.Client)
	fcfg := cfg.flowConfig()
	con, err := newConsole(cfg, store, keys, limiter, authLimit, js, rdb.Client,
		consolePlugins(disp, reader, store, flowPlug{store: flowStore, org: fcfg.Organization}),
		log.With().Str("component", "console").Logger())
	if err != nil {
		return err
	}
	fcfg.Activity = dcfg.Activity
	flowDelivery := dflows.New(fcfg, js, flowStore, log.With().Str("component", "flows").Logger())
	met.RegisterFlows(flowDelivery.Stats())
	apiCfg := api.Config{
		AllowInsecureEndpoints: cfg.AllowInsecureEndpoints,
		MaxWebhooksPerAccount:  cfg.MaxWebhooksPerAccount,
		RateLimit:              cfg.APIRateLimit,
		RateBurst:              cfg.APIRateBurst,
		Version:                version,
		Deliveries:             disp,
		CheckTopic:             func(t string) error { return dispatcher.CheckCaptured(t, cfg.Subjects) },
		Limiter:                limiter,
		AuthLimit:              authLimit,
		Console:                con,
		Flows:                  flowStore,
	}
	if attempts != nil {
		met.RegisterActivity(attempts)
		apiCfg.Attempts = reader
	}
	handler := api.New(apiCfg, store, keys, log.With().Str("component", "api").Logger())

	// Listen before serving, so a busy port fails start-up at once
	// (a busy default port is replaced: ports.go).
	var lc net.ListenConfig
	ln, note, err := listenHTTP(ctx, cfg)
	if err != nil {
		return err
	}
	portNotes = appendNote(portNotes, note)
	srv := newHTTPServer(handler, log)
	servers := []*http.Server{srv}
	listeners := []net.Listener{ln}
	if cfg.MetricsAddr != "" {
		mln, err := lc.Listen(ctx, "tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return &flagError{Flag: "metrics-addr", Value: cfg.MetricsAddr, Err: err}
		}
		msrv := newHTTPServer(met.Handler(), log)
		msrv.WriteTimeout = 0 // a CPU profile streams for as long as asked
		servers, listeners = append(servers, msrv), append(listeners, mln)
		log.Info().Str("addr", mln.Addr().String()).Msg("metrics and pprof serving")
	}

	printBanner(stderr, bannerInfo{
		APIURL:       "http://" + ln.Addr().String(),
		Key:          generatedKey,
		SinkSecret:   keepGenerated(cfg.DataDir, sinkSecretFile, demoSecret),
		Account:      cfg.DefaultAccount,
		NATSURL:      redactURL(natsURL),
		NATSDesc:     natsDesc,
		RedisDesc:    redisDesc,
		Subjects:     cfg.Subjects,
		InsecureOK:   cfg.AllowInsecureEndpoints,
		ProgramName:  programName(),
		SinkAddrPort: sinkAddr(ctx, defaultSinkAddr),
		Notes:        portNotes,
	})
	for _, n := range portNotes {
		log.Warn().Msg(n)
	}
	if hint := insecureHint(cfg); hint != "" {
		log.Warn().Msg(hint)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("version", version).Msg("webhookd serving")

	g, gctx := errgroup.WithContext(ctx)
	for i, srv := range servers { // step 1
		g.Go(func() error {
			err := srv.Serve(listeners[i])
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("http server %s: %w", listeners[i].Addr(), err)
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), httpShutdownTimeout)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	// The attempt log outlives the dispatcher's drain (step 2).
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(gctx))
	defer stopLog()
	if attempts != nil {
		g.Go(func() error { return attempts.Run(logCtx) })
	}
	// The log stops once both the dispatcher and flow delivery drained.
	var drained sync.WaitGroup
	drained.Add(2)
	go func() { drained.Wait(); stopLog() }()
	g.Go(func() error { // step 2
		defer drained.Done()
		if err := disp.Run(gctx); err != nil {
			return fmt.Errorf("dispatcher: %w", err)
		}
		return nil
	})
	g.Go(func() error { // step 2, beside the dispatcher
		defer drained.Done()
		if err := flowDelivery.Run(gctx); err != nil {
			return fmt.Errorf("flow delivery: %w", err)
		}
		return nil
	})
	if rdb.managed != nil {
		g.Go(func() error { return rdb.managed.Watch(gctx) })
	}
	err = g.Wait()
	log.Info().Err(err).Msg("webhookd stopping")
	return err
}

// dispatcherConfig maps the flags onto the dispatcher's Config.
func (c *serveConfig) dispatcherConfig() dispatcher.Config {
	return dispatcher.Config{
		Subjects:               c.Subjects,
		DefaultAccount:         c.DefaultAccount,
		DeliveryTimeout:        c.DeliveryTimeout,
		MaxInFlight:            c.MaxInFlight,
		BatchMaxEvents:         c.BatchMaxEvents,
		BatchMaxBytes:          int(c.BatchMaxBytes),
		BatchLinger:            c.BatchLinger,
		BackoffBase:            c.BackoffBase,
		BackoffMax:             c.BackoffMax,
		DisableAfter:           c.DisableAfter,
		Lease:                  c.SemaphoreLease,
		MaxBufferedBytes:       int64(c.MaxBufferedBytes),
		AdoptRegistry:          c.AdoptRegistry,
		Partitions:             c.Partitions,
		AllowInsecureEndpoints: c.AllowInsecureEndpoints,
		UserAgent:              "webhookd/" + version,
		Replicas:               c.StreamReplicas,
		OpsURL:                 c.OpsURL,
		OpsSecret:              c.OpsSecret,
		// Stream, StreamMaxAge and DeadLetter keep the dispatcher's
		// defaults: no flag sets them.
	}
}

// activityConfig maps the flags onto the attempt log's Config.
func (c *serveConfig) activityConfig(met *metrics.Metrics) activity.Config {
	return activity.Config{
		Retention:  c.ActivityRetention,
		MaxBytes:   int64(c.ActivityMaxBytes),
		Replicas:   c.StreamReplicas,
		ObserveLag: met.ObserveActivityLag,
	}
}

// redisConn is the Redis client and, when webhookd runs redis-server
// itself, the supervisor of that process.
type redisConn struct {
	*redis.Client
	managed *redisproc.Server
}

// openRedis connects to --redis-url, or starts a managed redis-server
// under the data directory when it is empty. The description is for the
// start-up banner.
func openRedis(ctx context.Context, cfg serveConfig, log zerolog.Logger) (*redisConn, string, error) {
	if cfg.RedisURL != "" {
		rdb, err := connectRedis(ctx, "redis-url", cfg.RedisURL)
		if err != nil {
			return nil, "", err
		}
		return &redisConn{Client: rdb}, "external " + redactURL(cfg.RedisURL), nil
	}
	m, err := redisproc.Start(ctx, redisproc.Config{Dir: filepath.Join(cfg.DataDir, "redis")}, log.With().Str("component", "redis").Logger())
	switch {
	case errors.Is(err, redisproc.ErrNotInstalled):
		return nil, "", errors.New("redis-server is not installed; it is needed when --redis-url is empty: " +
			"install it with `apt-get install -y redis-server` (or `make deps`), or pass --redis-url")
	case errors.Is(err, redisproc.ErrDir), errors.Is(err, redisproc.ErrInUse):
		return nil, "", &flagError{Flag: "data-dir", Value: cfg.DataDir, Err: err}
	case err != nil:
		return nil, "", err
	}
	rdb, err := connectRedis(ctx, "redis-url", m.URL())
	if err != nil {
		m.Stop()
		return nil, "", err
	}
	desc := fmt.Sprintf("managed redis-server (pid %d), socket %s, AOF in %s", m.Pid(), m.Socket, m.Dir)
	if m.SocketNote != "" {
		desc += "\n             note: " + m.SocketNote
	}
	return &redisConn{Client: rdb, managed: m}, desc, nil
}

// startNATS starts the embedded nats-server with its store in storeDir,
// naming the flag at fault when it cannot.
func startNATS(cfg serveConfig, storeDir string, log zerolog.Logger) (*natsembed.Server, error) {
	ns, err := natsembed.Start(natsembed.Config{Listen: cfg.NATSListen, StoreDir: storeDir, SyncAlways: cfg.NATSSyncAlways}, log)
	if se, ok := errors.AsType[*natsembed.SettingError](err); ok {
		if se.Field == "Listen" {
			return nil, &flagError{Flag: "nats-listen", Value: cfg.NATSListen, Err: se.Err}
		}
		return nil, &flagError{Flag: "data-dir", Value: cfg.DataDir, Err: se.Err}
	}
	return ns, err
}

// newHTTPServer returns the API server with explicit timeouts: the API's
// bodies are small (64 KiB cap), so generous read/write bounds only
// protect against stalled clients.
func newHTTPServer(h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          newStdLogger(log.With().Str("component", "http").Logger()),
	}
}

// appendNote appends a non-empty banner note.
func appendNote(notes []string, note string) []string {
	if note == "" {
		return notes
	}
	return append(notes, note)
}
