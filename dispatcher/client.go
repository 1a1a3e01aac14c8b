package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// ErrBlockedAddress: the endpoint resolved to a loopback, private,
// link-local, CGNAT, metadata or otherwise non-public address.
var ErrBlockedAddress = errors.New("dispatcher: endpoint address is not public")

// guardControl runs after DNS resolution, on the address about to be
// dialled, so a name that resolves (or re-resolves: DNS rebinding) to a
// private address is refused too. IPv4-mapped IPv6 is unmapped first.
func guardControl(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrBlockedAddress, address)
	}
	if !subscriptions.IsPublicAddr(ap.Addr().Unmap()) {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, ap.Addr())
	}
	return nil
}

// newClient is the one HTTP client every delivery shares: a whole-request
// deadline of DeliveryTimeout (Klaviyo's 5 s rule), no redirects followed
// (a 3xx is a failure), no proxy (the guard must see the target's
// address), and enough idle connections per host for many webhooks on one
// receiver at MaxInFlight each.
func newClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: min(cfg.DeliveryTimeout, 3*time.Second), KeepAlive: 30 * time.Second}
	if !cfg.AllowInsecureEndpoints {
		dialer.ControlContext = guardControl
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(cfg.DeliveryTimeout, 3*time.Second),
		ResponseHeaderTimeout:  cfg.DeliveryTimeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   cfg.DeliveryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// isConnErr reports network-level trouble talking to NATS or Redis.
func isConnErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED)
}
