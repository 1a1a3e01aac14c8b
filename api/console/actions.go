package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
		if d.Log, d.Next, err = p.Attempts(ctx, wh.ID, f); err != nil {
			return err
		}
	}
	if p := c.cfg.Plugins.Delivered; p != nil {
		var err error
		if d.Chart, err = deliveryChart(ctx, p, wh.ID, time.Now()); err != nil {
			return err
		}
	}
	if p := c.cfg.Plugins.Replay; p != nil {
		var err error
		if d.Replays, err = p.Replays(ctx, wh); err != nil {
			return err
		}
	}
	return nil
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
	if err != nil {
		return err
	}
	if err := c.pluginData(r, wh, &d); err != nil {
		return err
	}
	d.Test = &a
	c.renderPage(w, r, v, "webhook", d.Row.Name, "webhooks", d)
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
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return &consoleError{status: http.StatusBadRequest, msg: "A replay needs a start before its end."}
	}
	if _, err := p.StartReplay(r.Context(), wh, from, to); err != nil {
		return err
	}
	http.Redirect(w, r, webhookPath(wh.ID)+"?done=replay", http.StatusSeeOther)
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
	http.Redirect(w, r, webhookPath(wh.ID)+"?done=secret", http.StatusSeeOther)
	return nil
}
