//go:build unix

package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKlaviyoNodeSDK runs Klaviyo's official Node SDK (npm klaviyo-api,
// pinned in sdk/package.json) against the real product: the webhookd
// binary as `make run` starts it, with its embedded NATS and its managed
// redis-server. sdk/contract.mjs drives every Webhooks API call, and the
// flow webhooks' Flows API calls, through the unmodified SDK; this test builds and starts the server, runs node,
// and stops the server with SIGTERM, which must exit 0.
//
// It fails, never skips, when node or the SDK is missing: CI runs
// `make sdk-deps` first, and a skipped test is not a passing one.
func TestKlaviyoNodeSDK(t *testing.T) {
	node := sdkNode(t)
	srv, base := serveManaged(t, shortTempDir(t))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "contract.mjs")
	cmd.Dir = "sdk"
	cmd.Env = append(childEnv(), "BASE_URL="+base, "API_KEY="+testKey)
	out, err := cmd.CombinedOutput()
	t.Logf("node sdk/contract.mjs:\n%s", out)
	if err != nil {
		t.Errorf("node sdk/contract.mjs: %v\n%s", err, out)
	}

	if took, err := srv.stop(30 * time.Second); err != nil {
		t.Fatalf("webhookd serve after SIGTERM: %v (after %v), want exit status 0", err, took)
	}
	// Nothing of its process group (the managed redis-server) is left.
	pgid := srv.cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			t.Fatal("processes of webhookd's group (its redis-server) still run 5s after it exited")
		}
		time.Sleep(20 * time.Millisecond)
	}
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
