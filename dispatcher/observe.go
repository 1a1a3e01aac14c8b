package dispatcher

import (
	"strconv"
	"time"
)

// Observer is told about every request the dispatcher sends, for metrics.
// It is called from delivery goroutines, so it must be safe for
// concurrent use and cheap; Config.Observer nil means none.
type Observer interface {
	// Request reports one request: its outcome label (Outcomes lists
	// them), the events it carried, its body size in bytes and how long
	// it took from dial to the end of the response.
	Request(outcome string, events, bytes int, took time.Duration)
}

// Outcomes are the outcome labels an Observer receives: "success" is a
// 200, 201 or 202; any other status is counted by class ("status_2xx"
// holds 204 and friends); the rest are transport failures.
var Outcomes = []string{
	"success", "status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx",
	"timeout", "refused", "dns", "tls", "blocked", "invalid", "network",
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
	case kindTimeout:
		return "timeout"
	case kindRefused:
		return "refused"
	case kindDNS:
		return "dns"
	case kindTLS:
		return "tls"
	case kindBlocked:
		return "blocked"
	case kindInvalid:
		return "invalid"
	}
	return "network"
}

// ActiveWebhooks is the number of webhooks this replica is consuming for.
func (d *Dispatcher) ActiveWebhooks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runners)
}
