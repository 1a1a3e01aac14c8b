package console

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/webhookd/webhookd/subscriptions"
)

// errUnavailable answers a form whose feature this build lacks; the page
// shows no such form, so only a hand-made request gets it.
var errUnavailable = &consoleError{status: http.StatusNotImplemented, msg: "Not available in this build."}

// pluginData fills the sections of a webhook's page that plugins serve.
func (c *Console) pluginData(r *http.Request, wh subscriptions.Webhook, d *detailData) error {
	ctx := r.Context()
	if p := c.cfg.Plugins.Attempts; p != nil {
		f, err := parseAttemptFilter(r.URL.Query())
		if err != nil {
			return err
		}
		d.Filter = f
		if d.Log, d.Next, err = p.Attempts(ctx, wh, f); err != nil {
			return err
		}
		d.NextURL = nextPage(r.URL.Query(), d.Next)
	}
	if p := c.cfg.Plugins.Delivered; p != nil {
		var err error
		if d.Chart, err = deliveryChart(ctx, p, wh, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// nextPage is the query of the attempt log's next page: the same filter
// with the cursor; "" when there is none.
func nextPage(q url.Values, cursor string) string {
	if cursor == "" {
		return ""
	}
	q = maps.Clone(q)
	q.Del("done")
	q.Set("cursor", cursor)
	return "?" + q.Encode()
}

// attemptPage is the attempt log's page size.
const attemptPage = 50

func parseAttemptFilter(q url.Values) (AttemptFilter, error) {
	f := AttemptFilter{Outcome: q.Get("outcome"), Trigger: q.Get("trigger"), ExternalID: q.Get("external_id"),
		Cursor: q.Get("cursor"), Limit: attemptPage}
	if s := q.Get("status"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 999 {
			return f, &consoleError{status: http.StatusBadRequest, msg: "status must be an HTTP status code."}
		}
		f.Status = n
	}
	var err error
	if f.Since, err = formTime(q.Get("since")); err != nil {
		return f, err
	}
	if f.Until, err = formTime(q.Get("until")); err != nil {
		return f, err
	}
	return f, nil
}

// formTime reads a datetime-local input, taken as UTC; "" is zero.
func formTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &consoleError{status: http.StatusBadRequest, msg: "Times are YYYY-MM-DDTHH:MM, in UTC."}
}

// testSend sends one synthetic event and shows the attempt inline.
func (c *Console) testSend(w http.ResponseWriter, r *http.Request, v *viewer) error {
	p := c.cfg.Plugins.Test
	if p == nil {
		return errUnavailable
	}
	d, wh, err := c.detailData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	a, err := p.SendTest(r.Context(), wh)
	status := http.StatusOK
	var ce *consoleError
	switch {
	case errors.As(err, &ce): // e.g. 429, no free slot: said inline, beside the button
		status, d.TestError = ce.status, ce.msg
		if ce.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((ce.retryAfter+time.Second-1)/time.Second)))
		}
	case err != nil:
		return err
	default:
		d.Test = &a
	}
	if err := c.pluginData(r, wh, &d); err != nil {
		return err
	}
	c.renderPageStatus(w, r, status, v, "webhook", d.Row.Name, "webhooks", d)
	return nil
}

// replay starts redelivering a time window.
func (c *Console) replay(w http.ResponseWriter, r *http.Request, v *viewer) error {
	p := c.cfg.Plugins.Replay
	if p == nil {
		return errUnavailable
	}
	wh, err := c.webhook(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	from, err := formTime(r.PostForm.Get("from"))
	if err != nil {
		return err
	}
	to, err := formTime(r.PostForm.Get("to"))
	if err != nil {
		return err
	}
	// As in the API: an end in the future is now (later events arrive
	// live), and a start must not be in the future.
	now := time.Now()
	if to.After(now) {
		to = now
	}
	switch {
	case from.IsZero() || to.IsZero():
		return &consoleError{status: http.StatusBadRequest, msg: "A replay needs a start and an end."}
	case from.After(now):
		return &consoleError{status: http.StatusBadRequest, msg: "A replay's start must not be in the future."}
	case !from.Before(to):
		return &consoleError{status: http.StatusBadRequest, msg: "A replay needs a start before its end."}
	}
	rp, err := p.StartReplay(r.Context(), wh, from, to)
	if err != nil {
		return err
	}
	c.acted(w, r, v, wh, "replay", "console started a replay", func(e *zerolog.Event) { e.Str("replay_id", rp.ID) })
	return nil
}

// cancelReplay cancels a running replay; a finished one is left as it is.
func (c *Console) cancelReplay(w http.ResponseWriter, r *http.Request, v *viewer) error {
	p := c.cfg.Plugins.Replay
	if p == nil {
		return errUnavailable
	}
	wh, err := c.webhook(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := p.CancelReplay(r.Context(), wh, r.PathValue("rid")); err != nil {
		return err
	}
	c.acted(w, r, v, wh, "cancelled", "console cancelled a replay", func(e *zerolog.Event) { e.Str("replay_id", r.PathValue("rid")) })
	return nil
}

// rotateSecret starts a staged rotation to the secret typed in the form.
func (c *Console) rotateSecret(w http.ResponseWriter, r *http.Request, v *viewer) error {
	p := c.cfg.Plugins.Secrets
	if p == nil {
		return errUnavailable
	}
	wh, err := c.webhook(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	secret := strings.TrimSpace(r.PostForm.Get("secret"))
	overlap, err := time.ParseDuration(r.PostForm.Get("overlap"))
	if secret == "" || err != nil || overlap <= 0 {
		return &consoleError{status: http.StatusBadRequest, msg: "A rotation needs a new secret and an overlap such as 24h."}
	}
	if err := p.RotateSecret(r.Context(), wh, secret, overlap); err != nil {
		return err
	}
	c.acted(w, r, v, wh, "secret", "console started a secret rotation", func(e *zerolog.Event) { e.Int64("overlap_ms", overlap.Milliseconds()) })
	return nil
}

// acted logs, with what, an action v took on wh from the console (more
// adds its own fields) and sends the browser back to wh's page, which
// says done.
func (c *Console) acted(w http.ResponseWriter, r *http.Request, v *viewer, wh subscriptions.Webhook, done, what string, more func(*zerolog.Event)) {
	e := c.cfg.Log.Info().Str("webhook_id", wh.ID).Str("account_id", wh.AccountID).Str("by", v.bucket())
	more(e)
	e.Msg(what)
	http.Redirect(w, r, webhookPath(wh.ID)+"?done="+done, http.StatusSeeOther)
}

// rotation is a staged secret rotation as the page shows it: which
// secret is primary and when the other retires; never a secret.
type rotation struct {
	Status    string // pending, promoted, completed
	Primary   string // "current" or "new"
	PromoteAt time.Time
	RetireAt  time.Time
}

// rotationOf reads wh's staged rotation at now; nil when there is none.
// The states are the API's (delivery-state secret_rotation).
func rotationOf(wh subscriptions.Webhook, now time.Time) *rotation {
	rot := wh.Rotation
	if rot == nil {
		return nil
	}
	r := &rotation{Status: "promoted", Primary: "new", PromoteAt: rot.PromoteAt, RetireAt: rot.RetireAt}
	switch {
	case !now.Before(rot.RetireAt):
		r.Status = "completed"
	case now.Before(rot.PromoteAt):
		r.Status, r.Primary = "pending", "current"
	}
	return r
}
