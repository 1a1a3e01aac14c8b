package flows

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

// newClient is flow delivery's one HTTP client: a whole-request deadline,
// no redirects followed, no proxy, and system delivery's dial guard (the
// resolved address must be public) unless insecure endpoints are allowed.
func newClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: min(cfg.DeliveryTimeout, 3*time.Second), KeepAlive: 30 * time.Second}
	if !cfg.AllowInsecureEndpoints {
		dialer.ControlContext = dispatcher.DialGuard
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(cfg.DeliveryTimeout, 5*time.Second),
		ResponseHeaderTimeout:  cfg.DeliveryTimeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       cfg.DeliveryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// verdict is what one request's outcome means for its triggering event.
type verdict int

const (
	vDelivered verdict = iota // any 2xx (seed 003)
	vRetry                    // 429, 500, 502, 503, 504, timeouts, connection errors
	vSkip                     // anything else
)

// result is one request's outcome.
type result struct {
	verdict    verdict
	status     int
	class      activity.ErrorClass
	err        string // short, secret-free
	excerpt    string
	retryAfter time.Duration
}

// post sends body to a's URL.
func (d *Delivery) post(ctx context.Context, l *live, body []byte) result {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.action.Message.URL, bytes.NewReader(body))
	if err != nil {
		return result{verdict: vSkip, class: activity.ClassInvalidURL, err: "the action's url cannot be requested"}
	}
	flows.Apply(req, l.action.Message.Headers)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	req.Header.Set("X-Klaviyo-Flow-ID", l.flow.ID)
	resp, err := d.client.Do(req)
	if err != nil {
		return classifyErr(err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	return classifyStatus(resp, string(excerpt))
}

// classifyStatus maps an HTTP answer.
func classifyStatus(resp *http.Response, excerpt string) result {
	r := result{status: resp.StatusCode, excerpt: excerpt}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		r.verdict = vDelivered
	case s == http.StatusTooManyRequests || s == 500 || s == 502 || s == 503 || s == 504:
		r.verdict, r.class = vRetry, activity.ClassServer
		if s == http.StatusTooManyRequests {
			r.class = activity.ClassClient
		}
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		r.err = "HTTP " + strconv.Itoa(s)
	case s >= 300 && s < 400:
		r.verdict, r.class, r.err = vSkip, activity.ClassRedirect, fmt.Sprintf("HTTP %d: redirects are not followed", s)
	case s >= 400 && s < 500:
		r.verdict, r.class, r.err = vSkip, activity.ClassClient, "HTTP "+strconv.Itoa(s)
	default:
		r.verdict, r.class, r.err = vSkip, activity.ClassServer, "HTTP "+strconv.Itoa(s)
	}
	return r
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 if neither.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// classifyErr maps a request that got no answer: a blocked address is a
// setting to fix (skipped); timeouts, TLS and connection failures retry.
func classifyErr(err error) result {
	var (
		ne      net.Error
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, dispatcher.ErrBlockedAddress):
		return result{verdict: vSkip, class: activity.ClassBlocked, err: "the url resolves to a non-public address"}
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &recErr):
		return result{verdict: vRetry, class: activity.ClassTLS, err: "TLS handshake or certificate failed"}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return result{verdict: vRetry, class: activity.ClassTimeout, err: "no answer within the delivery timeout"}
	}
	return result{verdict: vRetry, class: activity.ClassConnect, err: "unable to connect"}
}
