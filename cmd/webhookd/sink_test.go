package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// syncBuffer is an io.Writer the sink and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSink runs `webhookd sink --addr 127.0.0.1:0 args...` until the
// test ends, then stops it as SIGINT would and checks that it exits
// cleanly with its summary line. It returns the sink's base URL, read
// from the first line of stdout as scripts do.
func startSink(tb testing.TB, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runSink(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), &stdout, &stderr)
	}()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("runSink() = %v, want nil", err)
		}
		if !strings.Contains(stdout.String(), "\nsink: 1 requests, 0 batches") {
			tb.Errorf("stdout after shutdown = %q, want a summary line counting the request", stdout.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		first, _, ok := strings.Cut(stdout.String(), "\n")
		if ok {
			url, found := strings.CutPrefix(first, "sink listening on ")
			if !found {
				tb.Fatalf("first line = %q, want sink listening on http://ADDR", first)
			}
			return url
		}
		select {
		case err := <-done:
			tb.Fatalf("runSink() = %v before listening; stderr: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatal("sink printed no address")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The flags reach the sink: --status 503 answers an unsigned request
// with 401 (--secret is set) and the summary line counts it.
func TestSinkRuns(t *testing.T) {
	url := startSink(t, "--secret", "s", "--status", "503")
	if st := postUnsigned(t, url+"/hook"); st != http.StatusUnauthorized {
		t.Errorf("unsigned POST = %d, want 401", st)
	}
}

// postUnsigned POSTs {} without a signature and returns the status.
func postUnsigned(tb testing.TB, url string) int {
	tb.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestSinkFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the error
	}{
		{nil, "--secret"},
		{[]string{"--secret", ""}, "secret"},
		{[]string{"--secret", "s", "--no-verify"}, "--no-verify"},
		{[]string{"--secret", "s", "--addr", "nowhere"}, "--addr"},
		{[]string{"--secret", "s", "--status", "99"}, "--status"},
		{[]string{"--secret", "s", "--delay", "-1s"}, "--delay"},
		{[]string{"--secret", "s", "--fail-rate", "1.5"}, "--fail-rate"},
		{[]string{"--secret", "s", "--fail-mode", "slow"}, "--fail-mode"},
		{[]string{"--secret", "s", "--max-body", "1"}, "--max-body"},
		{[]string{"--secret", "s", "extra"}, "extra"},
	} {
		err := runSink(context.Background(), tt.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("runSink(%q) = %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}

func TestSinkBusyPort(t *testing.T) {
	url := startSink(t, "--secret", "s")
	postUnsigned(t, url+"/hook") // the request startSink's summary line counts
	err := runSink(context.Background(), []string{"--secret", "s", "--addr", strings.TrimPrefix(url, "http://")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Errorf("runSink on a busy port = %v, want an error naming --addr", err)
	}
}

// --secret takes a comma list as well as the whole value, since a secret
// may itself hold commas.
func TestAppendSecret(t *testing.T) {
	var got []string
	for _, v := range []string{"s1", "s2,s3", "s1"} {
		got = appendSecret(got, v)
	}
	if want := []string{"s1", "s2,s3", "s2", "s3"}; !cmp.Equal(got, want) {
		t.Errorf("appendSecret over s1, s2,s3, s1 = %q, want %q", got, want)
	}
}
