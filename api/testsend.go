package api

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
)

// attemptAttributes are a test send's webhook-attempt attributes (the
// attempt log's resource; status, error_class and error are null when
// they do not apply).
type attemptAttributes struct {
	StartedAt       *string  `json:"started_at"`
	DurationMS      int64    `json:"duration_ms"`
	Trigger         string   `json:"trigger"`
	Outcome         string   `json:"outcome"`
	Status          *int     `json:"status"`
	ErrorClass      *string  `json:"error_class"`
	Error           *string  `json:"error"`
	ResponseExcerpt string   `json:"response_excerpt"`
	Events          int      `json:"events"`
	Bytes           int      `json:"bytes"`
	Attempt         int      `json:"attempt"`
	NextAttemptAt   *string  `json:"next_attempt_at"`
	ExternalIDs     []string `json:"external_ids"`
	WebhookID       string   `json:"webhook_id"`
	AccountID       string   `json:"account_id"`
}

func attemptResource(a activity.Attempt) resource {
	attrs := attemptAttributes{
		StartedAt: rfc3339(a.StartedAt), DurationMS: a.Duration.Milliseconds(), Trigger: string(a.Trigger),
		Outcome: string(a.Outcome), ErrorClass: nonEmpty(string(a.ErrorClass)), Error: nonEmpty(a.Error),
		ResponseExcerpt: a.ResponseExcerpt, Events: a.Events, Bytes: a.Bytes, Attempt: a.Attempt,
		NextAttemptAt: rfc3339(a.NextAttemptAt), ExternalIDs: a.ExternalIDs, WebhookID: a.WebhookID, AccountID: a.AccountID,
	}
	if a.Status != 0 {
		st := a.Status
		attrs.Status = &st
	}
	return resource{Type: "webhook-attempt", ID: a.ID, Attributes: attrs}
}

// testSend serves POST /webhookd/webhooks/{id}/test: one synthetic event
// (topic webhookd.test, external id test-<uuid>, "test": true) sent now;
// the answer is 200 with its webhook-attempt, whatever the endpoint
// answered (the attempt says), or 429 with Retry-After when every
// request slot of the webhook stayed in use. No body is needed.
func (s *server) testSend(w http.ResponseWriter, r *http.Request, account string) error {
	wh, d, err := s.deliveriesFor(r, account)
	if err != nil {
		return err
	}
	a, err := d.TestSend(r.Context(), wh)
	if errors.Is(err, dispatcher.ErrNoSlot) {
		w.Header().Set("Retry-After", "1")
	}
	if err != nil {
		return err
	}
	res := attemptResource(a)
	res.Links = selfLink{Self: baseURL(r) + "/webhookd/webhooks/" + url.PathEscape(wh.ID) + "/attempts/" + url.PathEscape(a.ID)}
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}
