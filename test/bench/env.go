package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webhookd/webhookd/batcher"
)

// topic is the one every scenario publishes and subscribes to.
const topic = "event:klaviyo.sent_sms"

// secret signs every bench webhook; the sinks verify with it.
const secret = "whsec_bench_0123456789abcdef"

// streamName is the stream webhookd creates (dispatcher.Config default).
const streamName = "EVENTS"

// binaries are the programs a run starts.
type binaries struct {
	webhookd, nats, redis string
}

// env is one scenario's private world: a nats-server, a redis-server, the
// sinks and webhookd, each a child process with its files under dir. Every
// scenario gets a fresh env, so streams, consumers and memory peaks never
// carry over, and close removes its store.
type env struct {
	name string
	dir  string
	bins binaries
	ps   *procSet

	natsP    *proc
	natsURL  string
	redisP   *proc
	redisURL string
	nc       *nats.Conn
	js       jetstream.JetStream

	wd     *proc
	wdRuns int
	apiURL string
	// profile: webhookd serves /debug/pprof on metricsURL (--profile).
	profile    bool
	metricsURL string
	wdFlags    []string
	// partitions is webhookd's --partitions: 0 is one consumer per
	// webhook (model.go).
	partitions int
	keys       map[string]string // account → API key
	http       *http.Client
}

// newEnv starts NATS and Redis for scenario name with API keys for
// accounts; webhookd starts with startWebhookd, in the run's consumption
// model (--partitions).
func (b *bench) newEnv(ctx context.Context, name string, accounts []string, wdFlags ...string) (*env, error) {
	dir := filepath.Join(b.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &env{
		name: name, dir: dir, bins: b.bins, ps: &procSet{dir: dir}, wdFlags: wdFlags,
		partitions: b.cfg.partitions, profile: b.cfg.profile,
		keys: map[string]string{}, http: &http.Client{Timeout: 30 * time.Second},
	}
	for _, a := range accounts {
		e.keys[a] = "bench-key-" + a + "-0123456789abcdef"
	}
	if err := e.startNATS(ctx); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startRedis(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// startNATS runs the nats-server built from go.mod's version, JetStream
// on, file store in the env, default settings otherwise (sync every 2 min:
// what an operator gets unless they set sync_interval; the README's
// durability section says what always costs).
func (e *env) startNATS(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	host, port, _ := strings.Cut(addr, ":")
	p, err := e.ps.start("nats-server", e.bins.nats, []string{
		"-a", host, "-p", port, "-js", "-sd", filepath.Join(e.dir, "jetstream"), "-n", "bench-" + e.name,
	})
	if err != nil {
		return err
	}
	e.natsP, e.natsURL = p, "nats://"+addr
	if err := waitFor(ctx, p, 15*time.Second, "nats-server", func() bool { return dialOK("tcp", addr) }); err != nil {
		return err
	}
	e.nc, err = nats.Connect(e.natsURL, nats.Name("webhookd-bench"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect nats: %w", err)
	}
	e.js, err = jetstream.New(e.nc)
	return err
}

// startRedis runs a private redis-server on a unix socket only (never the
// shared one on 6379), with AOF every second like webhookd's managed Redis.
func (e *env) startRedis(ctx context.Context) error {
	sock := filepath.Join(e.dir, "redis.sock")
	p, err := e.ps.start("redis-server", e.bins.redis, []string{
		"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", e.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
		"--loglevel", "warning",
	})
	if err != nil {
		return err
	}
	e.redisP, e.redisURL = p, "unix://"+sock
	return waitFor(ctx, p, 10*time.Second, "redis-server", func() bool { return dialOK("unix", sock) })
}

// startWebhookd starts `webhookd serve` against the env's NATS and Redis
// and waits for its API. extra flags follow the env's (later flags win).
func (e *env) startWebhookd(ctx context.Context, extra ...string) error {
	e.wdRuns++
	name := "webhookd"
	if e.wdRuns > 1 {
		name += "-" + strconv.Itoa(e.wdRuns)
	}
	r, err := e.startReplica(ctx, name, extra...)
	if err != nil {
		return err
	}
	e.wd, e.apiURL, e.metricsURL = r.p, r.apiURL, r.metricsURL
	return nil
}

// replica is one running `webhookd serve`.
type replica struct {
	p          *proc
	apiURL     string
	metricsURL string // with --profile only
}

// startReplica starts a `webhookd serve` named name (its log file) and
// waits for its API; several may run at once (the scale scenario).
func (e *env) startReplica(ctx context.Context, name string, extra ...string) (*replica, error) {
	var keys []string
	for a, k := range e.keys {
		keys = append(keys, k+"="+a)
	}
	args := append([]string{"serve",
		"--nats-url", e.natsURL,
		"--redis-url", e.redisURL,
		"--http-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(e.dir, "webhookd-data"),
		"--allow-insecure-endpoints",
		"--log-format", "json",
		"--log-level", "info",
		"--partitions", strconv.Itoa(e.partitions),
	}, e.wdFlags...)
	if e.profile {
		args = append(args, "--metrics-addr", "127.0.0.1:0")
	}
	args = append(args, extra...)
	p, err := e.ps.start(name, e.bins.webhookd, args, "WEBHOOKD_API_KEYS="+strings.Join(keys, ","))
	if err != nil {
		return nil, err
	}
	// The JSON log line {"addr":"127.0.0.1:N",…,"message":"webhookd serving"}
	// is how the e2e tests' approach (port 0) learns the port.
	addrOf := func(message string) func(line string) (string, bool) {
		return func(line string) (string, bool) {
			var l struct {
				Addr    string `json:"addr"`
				Message string `json:"message"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || l.Message != message || l.Addr == "" {
				return "", false
			}
			return l.Addr, true
		}
	}
	addr, err := waitLine(ctx, p, 60*time.Second, addrOf("webhookd serving"))
	if err != nil {
		return nil, err
	}
	r := &replica{p: p, apiURL: "http://" + addr}
	if e.profile {
		// Logged before "webhookd serving", so it is there by now.
		maddr, err := waitLine(ctx, p, time.Second, addrOf("metrics and pprof serving"))
		if err != nil {
			return nil, err
		}
		r.metricsURL = "http://" + maddr
	}
	return r, nil
}

// startProfile fetches a CPU profile of webhookd over the next d into
// path, in the background; wait for it with the returned function. It
// does nothing without --profile.
func (e *env) startProfile(ctx context.Context, path string, d time.Duration) (wait func()) {
	if e.metricsURL == "" {
		return func() {}
	}
	return e.startProfileURL(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", e.metricsURL, max(1, int(d.Seconds()))), path, d)
}

// startProfileURL saves what url answers (a profile taking up to d) into
// path, in the background; wait for it with the returned function.
func (e *env) startProfileURL(ctx context.Context, url, path string, d time.Duration) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		if b, err := io.ReadAll(resp.Body); err == nil {
			_ = os.WriteFile(path, b, 0o644)
		}
	}()
	return func() { <-done }
}

// stopWebhookd stops webhookd with SIGTERM (it drains in-flight requests).
func (e *env) stopWebhookd() {
	if e.wd != nil {
		e.wd.stop()
	}
}

// close stops every process of the env, newest first, and removes its
// stores (a full run writes several GB of events).
func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	e.ps.stopAll()
	_ = os.RemoveAll(filepath.Join(e.dir, "jetstream"))
	_ = os.RemoveAll(filepath.Join(e.dir, "webhookd-data"))
}

// pids names the processes whose CPU and memory a scenario reports.
func (e *env) pids(sinks ...*sinkProc) map[string]int {
	m := map[string]int{"webhookd": e.wd.Pid(), "nats": e.natsP.Pid(), "redis": e.redisP.Pid(), "bench": selfPid()}
	for i, s := range sinks {
		m["sink"+strconv.Itoa(i)] = s.p.Pid()
	}
	return m
}

// createWebhook creates a webhook for account through the Webhooks API,
// as any client would, and returns its id.
func (e *env) createWebhook(ctx context.Context, account, name, endpoint string) (string, error) {
	body, _ := json.Marshal(map[string]any{"data": map[string]any{
		"type": "webhook",
		"attributes": map[string]any{
			"name": name, "endpoint_url": endpoint, "secret_key": secret,
		},
		"relationships": map[string]any{"webhook-topics": map[string]any{
			"data": []map[string]string{{"type": "webhook-topic", "id": topic}},
		}},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.apiURL+"/api/webhooks", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+e.keys[account])
	req.Header.Set("revision", batcher.Version)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := e.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("create webhook: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create webhook: %s: %s", resp.Status, b)
	}
	var out struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Data.ID == "" {
		return "", fmt.Errorf("create webhook: no id in %s", b)
	}
	return out.Data.ID, nil
}

// setEnabled disables or re-enables a webhook through the API (PATCH).
func (e *env) setEnabled(ctx context.Context, account, id string, enabled bool) error {
	body, _ := json.Marshal(map[string]any{"data": map[string]any{
		"type": "webhook", "id": id, "attributes": map[string]any{"enabled": enabled},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, e.apiURL+"/api/webhooks/"+id, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+e.keys[account])
	req.Header.Set("revision", batcher.Version)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("update webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("update webhook: %s: %s", resp.Status, b)
	}
	return nil
}

// errSinkMissing explains a webhookd without the sink subcommand.
var errSinkMissing = errors.New("this webhookd has no `sink` subcommand (cmd/webhookd/sink.go); the bench needs it")
