package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logLine waits for a JSON log line of p with the given message and
// returns it decoded.
func (p *proc) logLine(t *testing.T, message string) map[string]any {
	t.Helper()
	var line map[string]any
	waitFor(t, 30*time.Second, fmt.Sprintf("log line %q", message), func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["message"] == message {
				line = l
				return true
			}
		}
		return p.exited()
	})
	if line == nil {
		t.Fatalf("webhookd exited before logging %q: %v", message, p.err)
	}
	return line
}

// shortTempDir is a temporary directory with a short path: a managed
// redis-server's unix socket lives in it, and socket paths are limited
// to 108 bytes (t.TempDir's are long).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serveManaged starts `webhookd serve` with an embedded NATS and a managed
// redis-server in dir and returns it with its API base URL.
func serveManaged(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	p := startProc(t, "serve", "--data-dir", dir,
		"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--api-key", testKey+"=default", "--allow-insecure-endpoints", "--log-format", "json")
	return p, "http://" + p.logLine(t, "webhookd serving")["addr"].(string)
}

// The managed redis-server keeps the registry across restarts (AOF), and
// if it dies webhookd says so and exits non-zero instead of limping on.
func TestManagedRedis(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	p, api := serveManaged(t, dir)
	body := `{"data":{"type":"webhook","attributes":{"name":"kept","endpoint_url":"http://127.0.0.1:9/hook","secret_key":"` + testSecret + `"},` +
		`"relationships":{"webhook-topics":{"data":[{"type":"webhook-topic","id":"` + topicSMS + `"}]}}}}`
	var created struct{ Data struct{ ID string } }
	if st := call(t, "POST", api+"/api/webhooks", body, &created); st != http.StatusCreated {
		t.Fatalf("create: status %d", st)
	}
	if took, err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("webhookd after SIGTERM: %v (after %v)", err, took)
	}

	p, api = serveManaged(t, dir)
	var got struct {
		Data struct{ Attributes struct{ Name string } }
	}
	if st := call(t, "GET", api+"/api/webhooks/"+created.Data.ID, "", &got); st != http.StatusOK || got.Data.Attributes.Name != "kept" {
		t.Fatalf("after a restart: GET webhook = %d, name %q; want 200, kept", st, got.Data.Attributes.Name)
	}

	pid := int(p.logLine(t, "managed redis-server started")["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing redis-server %d: %v", pid, err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("webhookd still running 15s after its redis-server died")
	}
	if p.err == nil {
		t.Error("webhookd exited 0 after its redis-server died, want non-zero")
	}
	if !strings.Contains(p.out.String(), "managed redis-server exited unexpectedly") {
		t.Error("webhookd did not say why it stopped")
	}
}
