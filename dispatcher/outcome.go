package dispatcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// outcomeKind classifies one request. The kind decides what happens to
// the batch: kindOK acknowledges it; kindNotSent and kindInterrupted hand
// it back at once without counting against the webhook; every other kind
// counts as a failure of the webhook and redelivers the batch after the
// backoff.
type outcomeKind int

const (
	kindOK          outcomeKind = iota // 200, 201 or 202
	kindStatus                         // any other status, 204 and 3xx included (redirects are not followed)
	kindTimeout                        // no complete answer within DeliveryTimeout
	kindRefused                        // connection refused or reset
	kindDNS                            // the host name did not resolve
	kindTLS                            // handshake or certificate failure
	kindBlocked                        // the address is not public (egress guard)
	kindInvalid                        // the endpoint URL itself is unusable
	kindNetwork                        // any other transport error
	kindNotSent                        // the lease could run out before the request ends: not sent
	kindInterrupted                    // this process was paused mid-request: the answer is unknown
)

// kinds names each kind twice: its Observer label and the short,
// secret-free text stored as last_error. kindOK and kindStatus are named
// by their status instead.
var kinds = [...]struct{ label, text string }{
	kindTimeout:     {"timeout", "timeout"},
	kindRefused:     {"refused", "connection refused"},
	kindDNS:         {"dns", "dns lookup failed"},
	kindTLS:         {"tls", "tls error"},
	kindBlocked:     {"blocked", "blocked address"},
	kindInvalid:     {"invalid", "invalid endpoint"},
	kindNetwork:     {"network", "network error"},
	kindNotSent:     {"not_sent", "not sent: lease expired"},
	kindInterrupted: {"interrupted", "interrupted: replica paused"},
}

// outcome is the result of one request.
type outcome struct {
	kind    outcomeKind
	status  int       // HTTP status when there was a response
	started time.Time // when the request was prepared; once sent, when it was sent
	// For the attempt log: how long the request took, its body size and
	// the first bytes of the response body.
	took    time.Duration
	bytes   int
	excerpt string
}

func (o outcome) ok() bool { return o.kind == kindOK }

// String is the short, secret-free classification stored as last_error.
func (o outcome) String() string {
	if o.kind == kindOK || o.kind == kindStatus {
		return "status " + strconv.Itoa(o.status)
	}
	return kinds[o.kind].text
}

// label is o's Observer label, one of Outcomes.
func (o outcome) label() string {
	switch o.kind {
	case kindOK:
		return "success"
	case kindStatus:
		if o.status >= 100 && o.status < 600 {
			return "status_" + strconv.Itoa(o.status/100) + "xx"
		}
		return "network"
	}
	return kinds[o.kind].label
}

// Successful reports whether status counts as delivered: only 200, 201
// and 202 do. 204 is not success: Klaviyo's contract names three codes.
func Successful(status int) bool {
	return status == http.StatusOK || status == http.StatusCreated || status == http.StatusAccepted
}

// classify maps a transport error from http.Client.Do to an outcome.
func classify(err error) outcome {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		ne      net.Error
	)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return outcome{kind: kindBlocked}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return outcome{kind: kindTimeout}
	case errors.As(err, &dnsErr):
		return outcome{kind: kindDNS}
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &unkAuth), errors.As(err, &hostErr):
		return outcome{kind: kindTLS}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return outcome{kind: kindRefused}
	}
	return outcome{kind: kindNetwork}
}
