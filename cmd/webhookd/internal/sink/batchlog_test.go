package sink

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/signer"
)

// lockedBuf is a log sink for concurrent handlers.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runLogged runs a sink whose log is returned, until the test ends.
func runLogged(tb testing.TB, cfg Config) (string, *lockedBuf) {
	tb.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	buf := &lockedBuf{}
	s := New(cfg, zerolog.New(buf))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run() = %v", err)
		}
	})
	return "http://" + ln.Addr().String(), buf
}

// One line per batch, accepted or rejected, with events, status and
// latency; --quiet none.
func TestSinkLogsEachBatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		status int
		lines  int
		msg    string
	}{
		{"accepted", Config{Secrets: []string{testSecret}}, 200, 3, `"message":"batch accepted"`},
		{"rejected", Config{Secrets: []string{testSecret}, Status: 503}, 503, 3, `"message":"batch rejected (--status)"`},
		{"quiet", Config{Secrets: []string{testSecret}, Quiet: true}, 200, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, log := runLogged(t, tc.cfg)
			for range 3 {
				mustDeliver(t, url+"/hook", testWebhook, testSecret, envelope(testWebhook, testEvents(4)), tc.status)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if log.String() == "" {
				lines = nil
			}
			if len(lines) != tc.lines {
				t.Fatalf("%d log lines, want %d:\n%s", len(lines), tc.lines, log)
			}
			for _, l := range lines {
				for _, want := range []string{tc.msg, `"events":4`, `"status":` + strconv.Itoa(tc.status), `"latency_ms":`, `"webhook_id":"` + testWebhook + `"`} {
					if !strings.Contains(l, want) {
						t.Errorf("line %s lacks %s", l, want)
					}
				}
			}
		})
	}
}

// During a rotation the sink accepts a delivery it can verify with
// either secret alone, through Webhookd-Signature.
func TestSinkVerifiesRotatingSignatures(t *testing.T) {
	const oldS, newS = "old-secret-0123456789", "new-secret-0123456789"
	for _, known := range []string{oldS, newS} {
		url, _ := runLogged(t, Config{Secrets: []string{known}, Quiet: true})
		body := envelope(testWebhook, testEvents(2))
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/hook", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		signer.SetHeadersRotating(req.Header, testWebhook, [][]byte{[]byte(newS), []byte(oldS)}, body, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		closeBody(resp)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("sink knowing only %s: %d, want 200", known[:3], resp.StatusCode)
		}
	}
}
