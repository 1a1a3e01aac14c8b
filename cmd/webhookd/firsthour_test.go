package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// busyPort holds a loopback port for the test and returns its address.
func busyPort(t *testing.T) string {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// A default port that is taken is replaced by a free one, with a note
// saying which and how to choose; a port the user chose fails, naming
// the flag and the commands that work.
func TestBusyPorts(t *testing.T) {
	ctx := context.Background()
	busy := busyPort(t)

	ln, note, err := listenHTTP(ctx, serveConfig{HTTPAddr: busy, HTTPAddrDefault: true})
	if err != nil {
		t.Fatalf("listenHTTP(busy default) = %v, want a free port", err)
	}
	defer ln.Close()
	if ln.Addr().String() == busy || !strings.Contains(note, ln.Addr().String()) || !strings.Contains(note, "--http-addr") {
		t.Errorf("listenHTTP(busy default) on %s, note %q; want another port, named, and the flag", ln.Addr(), note)
	}
	_, _, err = listenHTTP(ctx, serveConfig{HTTPAddr: busy})
	for _, want := range []string{"--http-addr", "address already in use", "--http-addr 127.0.0.1:0", "WEBHOOKD_HTTP_ADDR=", "make run ARGS='--http-addr"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("listenHTTP(busy, given) = %v, want it to say %q", err, want)
		}
	}

	addr, note := natsListenAddr(ctx, serveConfig{NATSListen: busy, NATSListenDefault: true})
	if addr != "127.0.0.1:0" || !strings.Contains(note, "--nats-listen") {
		t.Errorf("natsListenAddr(busy default) = %q, %q; want port 0 and a note naming --nats-listen", addr, note)
	}
	if addr, note := natsListenAddr(ctx, serveConfig{NATSListen: busy}); addr != busy || note != "" {
		t.Errorf("natsListenAddr(busy, given) = %q, %q; want it unchanged (the start then fails on it)", addr, note)
	}
	if a := sinkAddr(ctx, busy); a == busy || !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("sinkAddr(busy) = %q, want another loopback address", a)
	}
}

// The variables parseServeConfig marks as defaulted follow the flags
// and their environment twins.
func TestServeAddrDefaults(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		vars     map[string]string
		http, ns bool
	}{
		{nil, nil, true, true},
		{[]string{"--http-addr", "127.0.0.1:8080"}, nil, false, true},
		{nil, map[string]string{"WEBHOOKD_NATS_LISTEN": "127.0.0.1:4222"}, true, false},
	} {
		cfg, err := parseServeConfig(tc.args, env(tc.vars), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.HTTPAddrDefault != tc.http || cfg.NATSListenDefault != tc.ns {
			t.Errorf("%q %v: defaults http %t nats %t, want %t %t", tc.args, tc.vars, cfg.HTTPAddrDefault, cfg.NATSListenDefault, tc.http, tc.ns)
		}
	}
}

// The banner names the variable that is read (WEBHOOKD_API_KEYS) when
// keys are configured, and its curl works with a shell variable that
// is clearly not configuration.
func TestBannerWithConfiguredKeys(t *testing.T) {
	var b strings.Builder
	printBanner(&b, bannerInfo{APIURL: "http://127.0.0.1:8080", SinkSecret: kept{Value: "s"}, SinkAddrPort: "127.0.0.1:9000", ProgramName: "webhookd"})
	out := b.String()
	if !strings.Contains(out, "WEBHOOKD_API_KEYS") || strings.Contains(out, "WEBHOOKD_KEY ") || strings.Contains(out, "WEBHOOKD_KEY=") ||
		!strings.Contains(out, `"Authorization: Klaviyo-API-Key $KEY"`) {
		t.Errorf("banner with configured keys:\n%s", out)
	}
}

func TestInsecureHint(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow bool
		want  bool
	}{
		{"127.0.0.1:8080", false, true},
		{"localhost:8080", false, true},
		{"[::1]:8080", false, true},
		{"127.0.0.1:8080", true, false},
		{"0.0.0.0:8080", false, false},
		{"10.1.2.3:8080", false, false},
	} {
		got := insecureHint(serveConfig{HTTPAddr: tc.addr, AllowInsecureEndpoints: tc.allow})
		if (got != "") != tc.want || (got != "" && !strings.Contains(got, "--allow-insecure-endpoints")) {
			t.Errorf("insecureHint(%s, allow %t) = %q, want a hint: %t", tc.addr, tc.allow, got, tc.want)
		}
	}
}

// --log-format console writes colour codes only to a terminal.
func TestConsoleLogWithoutColourInPipes(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, "info", "console")
	log.Warn().Dur("retry_in_ms", 878*time.Millisecond).Msg("hello")
	if strings.Contains(buf.String(), "\x1b[") || !strings.Contains(buf.String(), "retry_in_ms=878") {
		t.Errorf("console log into a buffer = %q, want no colour codes and retry_in_ms=878", buf.String())
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("isTerminal(a file) = true")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		// Only where the test has a controlling terminal.
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("isTerminal(/dev/tty) = false")
		}
	}
}

// Every duration the program logs names its unit in the key: zerolog's
// Dur writes milliseconds (DurationFieldUnit), so each key ends in _ms.
func TestLogDurationKeysNameTheirUnit(t *testing.T) {
	if zerolog.DurationFieldUnit != time.Millisecond {
		t.Fatalf("zerolog.DurationFieldUnit = %v, want milliseconds", zerolog.DurationFieldUnit)
	}
	dur := regexp.MustCompile(`\.Dur\("([^"]+)"`)
	n := 0
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "test/bench") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range dur.FindAllStringSubmatch(string(src), -1) {
			n++
			if !strings.HasSuffix(m[1], "_ms") {
				t.Errorf("%s logs the duration %q without its unit (want a _ms key)", path, m[1])
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("scanning the sources: %v, %d durations found", err, n)
	}
}

func TestUserAgentCarriesVersion(t *testing.T) {
	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	var c serveConfig
	if got := c.dispatcherConfig().UserAgent; got != "webhookd/v1.2.3" {
		t.Errorf("UserAgent = %q, want webhookd/v1.2.3", got)
	}
	if got := versionLine(); !strings.HasPrefix(got, "webhookd v1.2.3 (commit ") {
		t.Errorf("versionLine() = %q", got)
	}
}
