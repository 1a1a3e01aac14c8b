package dispatcher

import "time"

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
// holds 204 and friends); the rest are transport failures. Requests that
// were not sent or whose answer is unknown (a paused replica) are not
// reported.
var Outcomes = []string{
	"success", "status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx",
	"timeout", "refused", "dns", "tls", "blocked", "invalid", "network",
}
