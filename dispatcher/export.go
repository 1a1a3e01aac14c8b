package dispatcher

import (
	"context"
	"strings"
	"syscall"
)

// DialGuard is the dial-time SSRF guard of system webhook delivery
// (newClient), for other deliveries (flow webhooks) to use the same:
// set it as net.Dialer.ControlContext.
func DialGuard(ctx context.Context, network, address string, c syscall.RawConn) error {
	return guardControl(ctx, network, address, c)
}

// EventSubject is the subject an event was published on, given the
// subject the event stream stored it under: partitioned consumption
// stores <topic>.<account> as wp.<k>.<topic>.<account> (partition.go).
func EventSubject(stored string) string {
	if rest, ok := strings.CutPrefix(stored, partitionPrefix+"."); ok {
		if _, subject, ok := strings.Cut(rest, "."); ok {
			return subject
		}
	}
	return stored
}
