package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/webhookd/webhookd/batcher"
	"github.com/webhookd/webhookd/cmd/webhookd/internal/metrics"
	"github.com/webhookd/webhookd/dispatcher"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestServeDefaults(t *testing.T) {
	cfg, err := parseServeConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig() = %v", err)
	}
	want := serveConfig{
		HTTPAddr: "127.0.0.1:8080", NATSListen: "127.0.0.1:4222", NATSSyncAlways: true, DataDir: "./data",
		DefaultAccount: "default", Subjects: []string{dispatcher.DefaultSubject}, StreamReplicas: 1,
		MaxWebhooksPerAccount: 10, APIRateLimit: 10, APIRateBurst: 20,
		AuthFailBurst: 10, AuthFailRefill: 6 * time.Second,
		DeliveryTimeout: 5 * time.Second, MaxInFlight: 10, BatchMaxEvents: 1000, BatchMaxBytes: batcher.DefaultMaxBytes,
		BatchLinger: 200 * time.Millisecond, BackoffBase: time.Second, BackoffMax: time.Hour,
		DisableAfter: 48 * time.Hour, SemaphoreLease: 30 * time.Second, LogLevel: "info", LogFormat: "json",
		MaxBufferedBytes: dispatcher.DefaultMaxBufferedBytes, Partitions: 16,
		FlowFlags: FlowFlags{FlowMaxInFlight: 10, FlowDeliveryTimeout: 10 * time.Second, FlowRetryBase: 30 * time.Second},
		Activity:  true, ActivityRetention: 720 * time.Hour, ActivityMaxBytes: 1 << 30,
		HTTPAddrDefault: true, NATSListenDefault: true,
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// Every flag has an environment twin WEBHOOKD_<FLAG>; a flag given on the
// command line wins over its twin, and an empty variable counts as unset.
func TestServeEnvTwins(t *testing.T) {
	vars := map[string]string{
		"WEBHOOKD_HTTP_ADDR":        "127.0.0.1:9999",
		"WEBHOOKD_REDIS_URL":        "redis://127.0.0.1:7000/2",
		"WEBHOOKD_MAX_IN_FLIGHT":    "7",
		"WEBHOOKD_BATCH_MAX_BYTES":  "1MiB",
		"WEBHOOKD_BATCH_LINGER":     "1s",
		"WEBHOOKD_NATS_SYNC_ALWAYS": "false",
		"WEBHOOKD_SUBJECTS":         "event:klaviyo.>, event:shop.>",
		"WEBHOOKD_DEFAULT_ACCOUNT":  "acme",
		"WEBHOOKD_LOG_FORMAT":       "", // unset: the default stays
	}
	cfg, err := parseServeConfig([]string{"--max-in-flight", "3", "--default-account=other"}, env(vars), io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig() = %v", err)
	}
	got := []any{cfg.HTTPAddr, cfg.RedisURL, cfg.MaxInFlight, cfg.BatchMaxBytes, cfg.BatchLinger, cfg.NATSSyncAlways, cfg.Subjects, cfg.DefaultAccount, cfg.LogFormat}
	want := []any{"127.0.0.1:9999", "redis://127.0.0.1:7000/2", 3, byteSize(1 << 20), time.Second, false,
		[]string{"event:klaviyo.>", "event:shop.>"}, "other", "json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env twins and flags (-want +got):\n%s", diff)
	}
	for _, name := range []string{"http-addr", "batch-linger", "max-in-flight", "default-account"} {
		if twin := envName(name); twin != "WEBHOOKD_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")) {
			t.Errorf("envName(%q) = %q", name, twin)
		}
	}
}

// The attempt log's flags and their twins.
func TestServeActivityFlags(t *testing.T) {
	vars := map[string]string{"WEBHOOKD_ACTIVITY_RETENTION": "168h", "WEBHOOKD_ACTIVITY_MAX_BYTES": "10GiB", "WEBHOOKD_ACTIVITY": "false"}
	cfg, err := parseServeConfig(nil, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ActivityRetention != 168*time.Hour || cfg.ActivityMaxBytes != 10<<30 || cfg.Activity {
		t.Errorf("from the environment: retention %s, max bytes %d, on %t; want 168h, 10GiB, off",
			cfg.ActivityRetention, cfg.ActivityMaxBytes, cfg.Activity)
	}
	cfg, err = parseServeConfig([]string{"--activity-retention", "2h", "--activity-max-bytes", "64MiB"}, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ac := cfg.activityConfig(metrics.New()); ac.Retention != 2*time.Hour || ac.MaxBytes != 64<<20 || ac.Replicas != 1 || ac.ObserveLag == nil {
		t.Errorf("activityConfig() = %+v, want the flags' 2h and 64MiB, 1 replica and the lag metric", ac)
	}
}

// --api-key repeats; WEBHOOKD_API_KEYS is a comma list, used only when no
// --api-key is given, and errors in it name the variable.
func TestServeAPIKeys(t *testing.T) {
	vars := map[string]string{"WEBHOOKD_API_KEYS": "key-one-0123456789=acme, key-two-0123456789=default"}
	cfg, err := parseServeConfig(nil, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"key-one-0123456789=acme", "key-two-0123456789=default"}; !cmp.Equal(cfg.APIKeys, want) || !cfg.APIKeysEnv {
		t.Errorf("APIKeys = %q (from env %t), want %q from the environment", cfg.APIKeys, cfg.APIKeysEnv, want)
	}
	keys, generated, err := cfg.keyring()
	if err != nil || generated.Value != "" || keys == nil {
		t.Errorf("keyring() = %v, %+v, %v; want the configured keys and none generated", keys, generated, err)
	}

	cfg, err = parseServeConfig([]string{"--api-key", "flag-key-0123456789=acme"}, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"flag-key-0123456789=acme"}; !cmp.Equal(cfg.APIKeys, want) || cfg.APIKeysEnv {
		t.Errorf("APIKeys = %q (from env %t), want only the flag's %q", cfg.APIKeys, cfg.APIKeysEnv, want)
	}

	cfg, err = parseServeConfig(nil, env(map[string]string{"WEBHOOKD_API_KEYS": "no-account"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cfg.keyring(); err == nil || !strings.Contains(err.Error(), "WEBHOOKD_API_KEYS") || strings.Contains(err.Error(), "no-account") {
		t.Errorf("keyring() of a bad WEBHOOKD_API_KEYS = %v, want an error naming the variable and not quoting the key", err)
	}

	dir := t.TempDir()
	cfg, err = parseServeConfig([]string{"--data-dir", dir}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	keys, first, err := cfg.keyring()
	if err != nil || first.Value == "" || first.Reused || keys == nil {
		t.Fatalf("keyring() with no keys = %v, %+v, %v; want a new generated key", keys, first, err)
	}
	if _, ok := keys.Lookup(first.Value); !ok {
		t.Errorf("the generated key is not in the keyring")
	}
	st, err := os.Stat(filepath.Join(dir, "api-key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("data-dir/api-key: %v, %v; want a file of mode 0600", st, err)
	}
	// The next start reuses it, so yesterday's curl still works.
	_, second, err := cfg.keyring()
	if err != nil || second.Value != first.Value || !second.Reused {
		t.Errorf("keyring() on the next start = %+v, %v; want %q reused", second, err, first.Value)
	}
	other := keepGenerated(dir, "sink-secret", demoSecret)
	if again := keepGenerated(dir, "sink-secret", demoSecret); again.Value != other.Value || !again.Reused || other.Reused {
		t.Errorf("sink secret: first %+v, then %+v; want one generated, then reused", other, again)
	}
}

// Each validation rule rejects its value with an error naming the flag
// and, for a value from the environment, the variable.
func TestServeValidation(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		flag string // named in the error
		set  bool   // refused by the flag's Set, in the flag package's words
	}{
		{args: []string{"--http-addr", "localhost"}, flag: "http-addr"},
		{args: []string{"--http-addr", "127.0.0.1:99999"}, flag: "http-addr"},
		{args: []string{"--metrics-addr", "nowhere"}, flag: "metrics-addr"},
		{args: []string{"--nats-listen", "4222"}, flag: "nats-listen"},
		{args: []string{"--redis-url", "http://x"}, flag: "redis-url"},
		{args: []string{"--data-dir", " "}, flag: "data-dir"},
		{args: []string{"--default-account", "a.b"}, flag: "default-account"},
		{args: []string{"--subjects", ","}, flag: "subjects"},
		{args: []string{"--subjects", ">"}, flag: "subjects"},
		{args: []string{"--subjects", "event:klaviyo.>,event:*"}, flag: "subjects"},
		{args: []string{"--stream-replicas", "0"}, flag: "stream-replicas"},
		{args: []string{"--stream-replicas", "6"}, flag: "stream-replicas"},
		{args: []string{"--api-rate-limit", "-1"}, flag: "api-rate-limit"},
		{args: []string{"--api-rate-burst", "0"}, flag: "api-rate-burst"},
		{args: []string{"--auth-fail-burst", "-1"}, flag: "auth-fail-burst"},
		{args: []string{"--auth-fail-refill", "0s"}, flag: "auth-fail-refill"},
		{args: []string{"--max-webhooks-per-account", "0"}, flag: "max-webhooks-per-account"},
		{args: []string{"--delivery-timeout", "0s"}, flag: "delivery-timeout"},
		{args: []string{"--max-in-flight", "0"}, flag: "max-in-flight"},
		{args: []string{"--max-in-flight", "1001"}, flag: "max-in-flight"},
		{args: []string{"--batch-max-events", "0"}, flag: "batch-max-events"},
		{args: []string{"--batch-max-events", "1001"}, flag: "batch-max-events"},
		{args: []string{"--batch-max-bytes", "1000"}, flag: "batch-max-bytes"},
		{args: []string{"--batch-max-bytes", "65MiB"}, flag: "batch-max-bytes"},
		{args: []string{"--batch-max-bytes", "lots"}, flag: "batch-max-bytes", set: true},
		{args: []string{"--batch-linger", "-1s"}, flag: "batch-linger"},
		{args: []string{"--backoff-base", "0s"}, flag: "backoff-base"},
		{args: []string{"--backoff-max", "0s"}, flag: "backoff-max"},
		{args: []string{"--backoff-base", "2m", "--backoff-max", "1m"}, flag: "backoff-max"},
		{args: []string{"--disable-after", "0s"}, flag: "disable-after"},
		{args: []string{"--semaphore-lease", "0s"}, flag: "semaphore-lease"},
		{args: []string{"--semaphore-lease", "10s"}, flag: "semaphore-lease"},        // < 2×5s + 200ms + 1s
		{args: []string{"--max-buffered-bytes", "1MiB"}, flag: "max-buffered-bytes"}, // < --batch-max-bytes 4MiB
		{args: []string{"--log-level", "verbose"}, flag: "log-level"},
		{args: []string{"--log-level", ""}, flag: "log-level"},
		{args: []string{"--log-format", "text"}, flag: "log-format"},
		{args: []string{"--admin-key", "short-key"}, flag: "admin-key"},
		{env: map[string]string{"WEBHOOKD_ADMIN_KEY": "0123456789abcde"}, flag: "admin-key"},
		{args: []string{"--activity-retention", "0s"}, flag: "activity-retention"},
		{args: []string{"--activity-retention", "30s"}, flag: "activity-retention"},
		{args: []string{"--activity-max-bytes", "512KiB"}, flag: "activity-max-bytes"},
		{args: []string{"--activity-max-bytes", "a lot"}, flag: "activity-max-bytes", set: true},
		{env: map[string]string{"WEBHOOKD_ACTIVITY_RETENTION": "1s"}, flag: "activity-retention"},
		{env: map[string]string{"WEBHOOKD_ACTIVITY_MAX_BYTES": "1KiB"}, flag: "activity-max-bytes"},
		{args: []string{"--ops-url", "ftp://ops.example.com/in"}, flag: "ops-url"},
		{args: []string{"--ops-url", "/relative", "--ops-secret", "s3cret-value"}, flag: "ops-url"},
		{args: []string{"--ops-url", "https://ops.example.com/in"}, flag: "ops-secret"},
		{args: []string{"--ops-secret", "s3cret-value"}, flag: "ops-secret"},
		{env: map[string]string{"WEBHOOKD_OPS_URL": "ftp://ops.example.com/in"}, flag: "ops-url"},
		{env: map[string]string{"WEBHOOKD_MAX_IN_FLIGHT": "0"}, flag: "max-in-flight"},
		{env: map[string]string{"WEBHOOKD_MAX_IN_FLIGHT": "many"}, flag: "max-in-flight"},
	} {
		_, err := parseServeConfig(tt.args, env(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-"+tt.flag+" ") && !strings.Contains(err.Error(), "-"+tt.flag+":") {
			t.Errorf("parseServeConfig(%q, env %v) = %v, want an error naming --%s", tt.args, tt.env, err, tt.flag)
			continue
		}
		for name := range tt.env {
			if !strings.Contains(err.Error(), "(from "+name+")") {
				t.Errorf("parseServeConfig(env %v) = %v, want it to name %s", tt.env, err, name)
			}
		}
		if fe, ok := errors.AsType[*flagError](err); len(tt.env) == 0 && !tt.set && (!ok || fe.Flag != tt.flag) {
			t.Errorf("parseServeConfig(%q) = %v, want a flagError for %s", tt.args, err, tt.flag)
		}
	}
}

// Several bad values are all reported at once.
func TestServeValidationJoins(t *testing.T) {
	_, err := parseServeConfig([]string{"--max-in-flight", "0", "--log-format", "text"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--max-in-flight") || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("parseServeConfig = %v, want both flags named", err)
	}
}

func TestServeArgs(t *testing.T) {
	if _, err := parseServeConfig([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseServeConfig(-h) = %v, want flag.ErrHelp", err)
	}
	if err := run(t.Context(), []string{"serve", "-h"}, env(nil), nil, io.Discard, io.Discard); err != nil {
		t.Errorf("serve -h = %v, want nil (help is not an error)", err)
	}
	if _, err := parseServeConfig([]string{"extra"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("parseServeConfig(extra) = %v, want an error naming the argument", err)
	}
}

// --ops-url and --ops-secret come from flags or their twins, reach the
// dispatcher's config, and the secret is never echoed in an error.
func TestServeOpsConfig(t *testing.T) {
	vars := map[string]string{"WEBHOOKD_OPS_URL": "https://ops.example.com/in", "WEBHOOKD_OPS_SECRET": "ops-s3cret-0123456789"}
	cfg, err := parseServeConfig(nil, env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.dispatcherConfig()
	if d.OpsURL != vars["WEBHOOKD_OPS_URL"] || d.OpsSecret != vars["WEBHOOKD_OPS_SECRET"] {
		t.Errorf("dispatcherConfig() ops = %q, %q; want the environment's", d.OpsURL, d.OpsSecret)
	}
	_, err = parseServeConfig([]string{"--ops-secret", "ops-s3cret-0123456789"}, env(nil), io.Discard)
	if err == nil || strings.Contains(err.Error(), "ops-s3cret") {
		t.Errorf("parseServeConfig(--ops-secret alone) = %v, want an error that does not quote the secret", err)
	}
}
