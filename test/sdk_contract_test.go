//go:build unix

package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestKlaviyoNodeSDK runs Klaviyo's official Node SDK (npm klaviyo-api,
// pinned in sdk/package.json) against the real product: the webhookd
// binary as `make run` starts it, with its embedded NATS and its managed
// redis-server. sdk/contract.mjs drives every Webhooks API call through
// the unmodified SDK; this test builds and starts the server, runs node,
// and stops the server with SIGTERM, which must exit 0.
//
// It fails, never skips, when node or the SDK is missing: CI runs
// `make sdk-deps` first, and a skipped test is not a passing one.
func TestKlaviyoNodeSDK(t *testing.T) {
	node := sdkNode(t)
	bin := sdkBuild(t)
	key := "pk_" + sdkRandHex(t, 17)

	srv := sdkStartServer(t, bin, key)
	base := "http://" + srv.httpAddr
	sdkWaitHealthy(t, srv, base)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "contract.mjs")
	cmd.Dir = "sdk"
	cmd.Env = append(sdkEnv(), "BASE_URL="+base, "API_KEY="+key)
	out, err := cmd.CombinedOutput()
	t.Logf("node sdk/contract.mjs:\n%s", out)
	if err != nil {
		t.Errorf("node sdk/contract.mjs: %v\n%s", err, out)
		t.Logf("webhookd output:\n%s", srv.out.String())
	}

	srv.stop(t)
}

// sdkNode returns the path of node and checks that the SDK is installed.
func sdkNode(tb testing.TB) string {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("node is not installed (run `make deps`): %v", err)
	}
	if _, err := os.Stat(filepath.Join("sdk", "node_modules", "klaviyo-api", "package.json")); err != nil {
		tb.Fatalf("the Klaviyo Node SDK is not installed in test/sdk/node_modules: run `make sdk-deps` (%v)", err)
	}
	return node
}

// sdkBuild builds cmd/webhookd into a temporary directory.
func sdkBuild(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "webhookd")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/webhookd")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ../cmd/webhookd: %v\n%s", err, out)
	}
	return bin
}

// sdkServer is a running `webhookd serve`.
type sdkServer struct {
	cmd      *exec.Cmd
	httpAddr string
	out      *sdkSyncBuffer
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid once done is closed
}

// sdkStartServer starts `webhookd serve` with an embedded NATS and a
// managed redis-server in a fresh data directory, accepting key for the
// account "default". The process leads its own process group, so that a
// test that fails before stop can kill it and its redis-server child.
func sdkStartServer(tb testing.TB, bin, key string) *sdkServer {
	tb.Helper()
	// A short directory: the managed redis-server's unix socket lives in
	// it, and socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "wsdk")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })

	s := &sdkServer{httpAddr: sdkFreeAddr(tb), out: &sdkSyncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve",
		"--http-addr", s.httpAddr,
		"--nats-listen", sdkFreeAddr(tb),
		"--data-dir", dir,
		"--api-key", key+"=default",
		"--allow-insecure-endpoints",
	)
	s.cmd.Env = sdkEnv()
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start webhookd serve: %v", err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() {
		// Only when the test ended before stop: kill the whole group.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
	return s
}

// stop sends SIGTERM and checks that webhookd exits 0 within 30 seconds
// and leaves no process of its group (its redis-server) behind.
func (s *sdkServer) stop(tb testing.TB) {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM webhookd: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		tb.Fatalf("webhookd did not exit within 30s of SIGTERM; output:\n%s", s.out.String())
	}
	if s.waitErr != nil {
		tb.Errorf("webhookd serve after SIGTERM: %v, want exit status 0; output:\n%s", s.waitErr, s.out.String())
	}
	pgid := s.cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			tb.Errorf("processes of webhookd's group (its redis-server) still run 5s after it exited")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sdkWaitHealthy polls GET /healthz until it answers 200, for up to 30s.
func sdkWaitHealthy(tb testing.TB, s *sdkServer, base string) {
	tb.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, base+"/healthz", nil)
		if err != nil {
			tb.Fatal(err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.done:
			tb.Fatalf("webhookd serve exited during start-up (%v); output:\n%s", s.waitErr, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s/healthz: no 200 after 30s (last error %v); output:\n%s", base, err, s.out.String())
		}
	}
}

// sdkFreeAddr returns a loopback address with a port that was free a
// moment ago. webhookd takes its addresses as flags, so the port is
// released before it binds; nothing else in the test binds ports.
func sdkFreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sdkEnv is the environment minus what would point the test elsewhere:
// WEBHOOKD_* (every serve flag has an environment twin, and
// WEBHOOKD_REDIS_URL or WEBHOOKD_NATS_URL would reach the developer's
// shared services) and proxy settings (axios, under the SDK, honours
// HTTP_PROXY; the server is on loopback).
func sdkEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch upper := strings.ToUpper(name); {
		case strings.HasPrefix(upper, "WEBHOOKD_"):
			continue
		case upper == "HTTP_PROXY" || upper == "HTTPS_PROXY" || upper == "ALL_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func sdkRandHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// sdkSyncBuffer is a bytes.Buffer that the process's output copiers and
// the test may use at once.
type sdkSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *sdkSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *sdkSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
