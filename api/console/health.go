package console

import (
	"strconv"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// Health keys, also the values of the list's health filter.
const (
	healthOK            = "healthy"
	healthError         = "error"
	healthDisabled      = "disabled"
	healthUndeliverable = "undeliverable"
)

// healthKeys are the filter choices in the order shown.
var healthKeys = []string{healthOK, healthError, healthUndeliverable, healthDisabled}

// health is a webhook's health in words, from its delivery state.
type health struct {
	Key    string    // one of the health keys; also the CSS class
	Words  string    // "healthy", "in error", "disabled", "undeliverable"
	Since  time.Time // zero when not known
	Detail string    // the last error, the disabled reason, or why undeliverable
	// NextAttempt is when a webhook in error is tried next.
	NextAttempt time.Time
	Failures    int
	rank        int // sort order: the worst first when sorting by health
}

// healthOf reads wh's delivery state. Disabled wins over everything (the
// reason says why), then undeliverable (enabled but no consumer), then
// in error, else healthy.
func healthOf(wh subscriptions.Webhook) health {
	st := wh.State
	switch {
	case !wh.Enabled:
		return health{Key: healthDisabled, Words: "disabled", Since: st.DisabledAt, Detail: st.DisabledReason, rank: 1}
	case st.UndeliverableReason != "":
		return health{Key: healthUndeliverable, Words: "undeliverable", Detail: st.UndeliverableReason, rank: 0}
	case !st.ErrorSince.IsZero():
		detail := st.LastError
		if st.LastStatus != 0 {
			detail = "HTTP " + strconv.Itoa(st.LastStatus) + ": " + detail
		}
		return health{Key: healthError, Words: "in error", Since: st.ErrorSince, Detail: detail,
			NextAttempt: st.NextAttemptAt, Failures: st.ConsecutiveFailures, rank: 0}
	}
	return health{Key: healthOK, Words: "healthy", rank: 2}
}
