package console

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// consoleError is an error with the status and message the viewer sees.
type consoleError struct {
	status     int
	msg        string
	retryAfter time.Duration
}

func (e *consoleError) Error() string { return "console: " + e.msg }

var errCSRF = &consoleError{status: http.StatusForbidden,
	msg: "This form expired or came from another site; reload the page and try again."}

func throttled(wait time.Duration) error {
	return &consoleError{status: http.StatusTooManyRequests, retryAfter: wait,
		msg: "Too many requests for this account; the page retries by itself."}
}

// fail renders err: a 404 for a webhook that is not the viewer's, the
// console error's own status, and a generic 500 (logged once here) for
// anything else, whose text never reaches the browser.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *viewer, err error) {
	var ce *consoleError
	switch {
	case errors.Is(err, subscriptions.ErrNotFound):
		c.errorPage(w, r, v, http.StatusNotFound, "There is no such webhook.")
	case errors.As(err, &ce):
		if ce.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((ce.retryAfter+time.Second-1)/time.Second)))
		}
		c.errorPage(w, r, v, ce.status, ce.msg)
	default:
		c.cfg.Log.Error().Err(err).Str("path", r.URL.Path).Msg("console request failed")
		c.errorPage(w, r, v, http.StatusInternalServerError, "Something went wrong; the server log has the details.")
	}
}
