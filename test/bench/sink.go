package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// sinkProc is a running `webhookd sink`: the product's own receiver,
// which verifies every signature and counts events, duplicates and
// concurrency (GET /stats).
type sinkProc struct {
	p    *proc
	url  string // http://host:port
	http *http.Client
}

// sinkStats is the JSON of the sink's GET /stats.
type sinkStats struct {
	Requests         int64            `json:"requests"`
	Batches          int64            `json:"batches"`
	Events           int64            `json:"events"`
	UniqueEvents     int64            `json:"unique_events"`
	Duplicates       int64            `json:"duplicates"`
	BadSignatures    int64            `json:"bad_signatures"`
	Mismatches       int64            `json:"mismatches"`
	Malformed        int64            `json:"malformed"`
	InjectedFailures int64            `json:"injected_failures"`
	Rejected         int64            `json:"rejected"`
	InFlight         int64            `json:"in_flight"`
	PeakInFlight     int64            `json:"peak_in_flight"`
	MaxBatchEvents   int              `json:"max_batch_events"`
	Webhooks         map[string]int64 `json:"webhooks"`
	Latency          *struct {
		Count int     `json:"count"`
		P50   float64 `json:"p50"`
		P99   float64 `json:"p99"`
		Max   float64 `json:"max"`
	} `json:"latency_ms"`
	ElapsedSeconds  float64 `json:"elapsed_s"`
	EventsPerSecond float64 `json:"events_per_s"`
}

// startSink starts a sink named name; extra are sink flags (--delay 1s).
func (e *env) startSink(ctx context.Context, name string, extra ...string) (*sinkProc, error) {
	args := append([]string{"sink", "--addr", "127.0.0.1:0", "--quiet", "--secret", secret}, extra...)
	if slices.Contains(extra, "--no-verify") { // unsigned requests (flow webhooks)
		args = append([]string{"sink", "--addr", "127.0.0.1:0", "--quiet"}, extra...)
	}
	p, err := e.ps.start(name, e.bins.webhookd, args)
	if err != nil {
		return nil, err
	}
	addr, err := waitLine(ctx, p, 15*time.Second, func(line string) (string, bool) {
		_, rest, ok := strings.Cut(line, "sink listening on ")
		return strings.TrimSpace(rest), ok
	})
	if err != nil {
		if p.Exited() {
			return nil, fmt.Errorf("%w: %w", errSinkMissing, err)
		}
		return nil, err
	}
	if !strings.HasPrefix(addr, "http") {
		addr = "http://" + addr
	}
	return &sinkProc{p: p, url: addr, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// endpoint is the URL a webhook delivering to this sink uses; the path
// names the webhook for the sink's logs only.
func (s *sinkProc) endpoint(name string) string { return s.url + "/hook/" + name }

// stats returns the sink's counters.
func (s *sinkProc) stats(ctx context.Context) (sinkStats, error) {
	var st sinkStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("sink stats: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, fmt.Errorf("sink stats: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("sink stats: %s", resp.Status)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("sink stats: %w", err)
	}
	return st, nil
}

// reset zeroes the sink's counters (POST /stats/reset).
func (s *sinkProc) reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/stats/reset", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("sink reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sink reset: %s", resp.Status)
	}
	return nil
}

// waitUnique waits until the sink has received want unique events (or
// more), polling every interval, for at most timeout.
func (s *sinkProc) waitUnique(ctx context.Context, want int64, interval, timeout time.Duration) (sinkStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.stats(ctx)
		if err == nil && st.UniqueEvents >= want {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return st, err
			}
			return st, fmt.Errorf("sink has %d of %d unique events after %s", st.UniqueEvents, want, timeout)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(interval):
		}
	}
}
