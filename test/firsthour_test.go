package test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runBinary runs the webhookd binary to completion and returns its
// stdout, stderr and exit code.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running %s %q: %v", bin, args, err)
	}
	return out.String(), errOut.String(), code
}

// The first commands a new user types answer helpfully: help in its
// three spellings lists every command with what it does, a bare
// webhookd too (exit 2), a bad flag is reported once, an unknown
// command points at help.
func TestFirstHourCommandLine(t *testing.T) {
	t.Parallel()
	bin := webhookdBinary(t)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out, errOut, code := runBinary(t, bin, args...)
		if code != 0 || errOut != "" {
			t.Errorf("webhookd %s: exit %d, stderr %q; want 0 and nothing", args[0], code, errOut)
		}
		for _, cmd := range []string{"serve ", "publish ", "sink ", "version "} {
			if !regexp.MustCompile(`(?m)^  ` + cmd + ` *\S.{20,}$`).MatchString(out) {
				t.Errorf("webhookd %s does not describe %q in one line:\n%s", args[0], cmd, out)
			}
		}
	}
	if _, errOut, code := runBinary(t, bin); code != 2 || !strings.Contains(errOut, "publish  publish events") {
		t.Errorf("bare webhookd: exit %d, stderr %q; want 2 and the command list", code, errOut)
	}
	for _, args := range [][]string{{"serve", "--bogus"}, {"publish", "--bogus"}, {"sink", "--bogus"}} {
		out, errOut, code := runBinary(t, bin, args...)
		if code != 2 || strings.Count(out+errOut, "bogus") != 1 || !strings.Contains(errOut, "webhookd "+args[0]+" -h") {
			t.Errorf("webhookd %s --bogus: exit %d, output %q; want exit 2 and the error once, pointing at -h", args[0], code, out+errOut)
		}
	}
	if _, errOut, code := runBinary(t, bin, "frob"); code != 2 || !strings.Contains(errOut, "webhookd help") {
		t.Errorf("webhookd frob: exit %d, stderr %q; want 2 and a pointer to help", code, errOut)
	}
}

// make build stamps the version (git describe) and the commit into the
// binary; webhookd version prints both.
func TestMakeBuildStampsVersion(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "webhookd")
	if out, err := exec.Command("make", "-C", "..", "build", "BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, _, code := runBinary(t, bin, "version")
	commit := strings.TrimSpace(string(head))
	if code != 0 || !strings.Contains(out, "(commit "+commit) || strings.HasPrefix(out, "webhookd dev ") {
		t.Errorf("webhookd version = %q (exit %d); want a stamped version and commit %s", out, code, commit)
	}
}

// getWith sends GET url with key and returns the status.
func getWith(t *testing.T, url, key string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var bannerKey = regexp.MustCompile(`API key    (pk_[A-Za-z0-9]+) `)

// Started without --api-key, serve keeps the key it generates (and the
// banner's sink secret) in the data dir, mode 0600, and the next start
// uses them again, so yesterday's curl still works. The first start,
// local and without --allow-insecure-endpoints, warns about that flag;
// --log-format console writes no colour codes into a pipe.
func TestGeneratedKeyKeptAcrossStarts(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	start := func(extra ...string) (*proc, string, string) {
		t.Helper()
		args := append([]string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
		p := startProc(t, args...)
		var key string
		waitFor(t, 60*time.Second, "the banner's API key", func() bool {
			m := bannerKey.FindStringSubmatch(p.out.String())
			if m != nil {
				key = m[1]
			}
			return m != nil || p.exited()
		})
		if key == "" {
			t.Fatalf("no API key in the banner:\n%s", p.out.String())
		}
		addr := regexp.MustCompile(`API        http://(\S+)`).FindStringSubmatch(p.out.String())
		return p, key, "http://" + addr[1]
	}

	p, key1, api := start("--log-format", "json")
	if st := getWith(t, api+"/api/webhooks", key1); st != http.StatusOK {
		t.Fatalf("GET /api/webhooks with the banner's key = %d, want 200", st)
	}
	p.logLine(t, "webhookd serving")
	out := p.out.String()
	if !strings.Contains(out, "--allow-insecure-endpoints (WEBHOOKD_ALLOW_INSECURE_ENDPOINTS") {
		t.Errorf("a local start without --allow-insecure-endpoints does not mention the flag:\n%s", tail(out, 3000))
	}
	if strings.Contains(out, "WEBHOOKD_KEY") {
		t.Errorf("the banner names WEBHOOKD_KEY, which nothing reads")
	}
	for _, f := range []string{"api-key", "sink-secret"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s in the data dir: %v, %v; want mode 0600", f, st, err)
		}
	}
	secret, _ := os.ReadFile(filepath.Join(dir, "sink-secret"))
	if !regexp.MustCompile(`sink --addr 127\.0\.0\.1:\d+ --secret ` + strings.TrimSpace(string(secret))).MatchString(out) {
		t.Errorf("the banner's sink command does not use the kept secret")
	}
	if _, err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("stopping webhookd: %v", err)
	}

	p, key2, api := start("--log-format", "console", "--allow-insecure-endpoints")
	if key2 != key1 {
		t.Errorf("second start: key %s, want the kept %s", key2, key1)
	}
	if st := getWith(t, api+"/api/webhooks", key1); st != http.StatusOK {
		t.Errorf("after a restart, GET with yesterday's key = %d, want 200", st)
	}
	waitFor(t, 30*time.Second, "the serving line", func() bool { return strings.Contains(p.out.String(), "webhookd serving") })
	out = p.out.String()
	if strings.Contains(out, "\x1b[") {
		t.Errorf("--log-format console wrote colour codes into a pipe:\n%q", tail(out, 500))
	}
	if !strings.Contains(out, "since the first start") || !strings.Contains(out, "secret "+strings.TrimSpace(string(secret))) {
		t.Errorf("second banner does not say the key is reused, or changed the sink secret:\n%s", tail(out, 3000))
	}
	if strings.Contains(out, "WEBHOOKD_ALLOW_INSECURE_ENDPOINTS=true") {
		t.Errorf("the insecure-endpoints hint appears although the flag is set")
	}
}
