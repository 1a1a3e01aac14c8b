package api

import (
	"net/http"
	"net/url"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// deliveryStateAttributes show why a webhook is in error, disabled or
// undeliverable, what waits for it and what runs now. in_error says
// whether it is in error now: after a recovery it is false and
// error_since null, while last_status, last_error and last_failure_at
// stay as the last failure's history (read them with last_success_at,
// which is later). backlog is the events waiting for it (README,
// "Delivery state", defines it per consumption model) and in_flight its
// requests running now on every replica; both are null when the API
// runs without a dispatcher or they cannot be read.
// last_auto_disabled_at and _reason record the last disable by
// disable-after and survive a re-enable. Timestamps are RFC 3339 or null; last_status,
// last_error, disabled_reason and undeliverable_reason are null when
// unset (last_status is null, too, when the last failure got no response
// at all: last_error then says why). undeliverable_reason is set while
// the dispatcher cannot deliver the webhook at all, enabled or not (e.g.
// its consumer cannot be created), so an enabled webhook that receives
// nothing always says why.
type deliveryStateAttributes struct {
	Enabled             bool    `json:"enabled"`
	InError             bool    `json:"in_error"`
	ErrorSince          *string `json:"error_since"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
	LastStatus          *int    `json:"last_status"`
	LastError           *string `json:"last_error"`
	LastFailureAt       *string `json:"last_failure_at"`
	LastSuccessAt       *string `json:"last_success_at"`
	NextAttemptAt       *string `json:"next_attempt_at"`
	DisabledAt          *string `json:"disabled_at"`
	DisabledReason      *string `json:"disabled_reason"`
	UndeliverableReason *string `json:"undeliverable_reason"`

	LastAutoDisabledAt     *string `json:"last_auto_disabled_at"`
	LastAutoDisabledReason *string `json:"last_auto_disabled_reason"`
	Backlog                *int64  `json:"backlog"`
	InFlight               *int    `json:"in_flight"`
	// SecretRotation: which secret is primary and when the other retires
	// (rotations.go); null without a staged rotation.
	SecretRotation *rotationState `json:"secret_rotation"`
}

// getDeliveryState serves the extension GET
// /webhookd/webhooks/{id}/delivery-state: the webhook's error state as a
// "webhook-delivery-state" resource, so that operators can see why a
// webhook was disabled or cannot be delivered without changing Klaviyo's
// webhook resource.
func (s *server) getDeliveryState(w http.ResponseWriter, r *http.Request, account string) error {
	wh, err := s.store.Get(r.Context(), account, r.PathValue("id"))
	if err != nil {
		return err
	}
	st := wh.State
	attrs := deliveryStateAttributes{
		Enabled:             wh.Enabled,
		ErrorSince:          rfc3339(st.ErrorSince),
		ConsecutiveFailures: st.ConsecutiveFailures,
		LastError:           nonEmpty(st.LastError),
		LastFailureAt:       rfc3339(st.LastFailureAt),
		LastSuccessAt:       rfc3339(st.LastSuccessAt),
		NextAttemptAt:       rfc3339(st.NextAttemptAt),
		DisabledAt:          rfc3339(st.DisabledAt),
		DisabledReason:      nonEmpty(st.DisabledReason),
		UndeliverableReason: nonEmpty(st.UndeliverableReason),

		InError:                !st.ErrorSince.IsZero(),
		LastAutoDisabledAt:     rfc3339(st.LastAutoDisabledAt),
		LastAutoDisabledReason: nonEmpty(st.LastAutoDisabledReason),
	}
	attrs.Backlog, attrs.InFlight = s.figures(r, wh)
	attrs.SecretRotation = rotationStateOf(wh, time.Now())
	if st.LastStatus != 0 {
		attrs.LastStatus = &st.LastStatus
	}
	self := selfLink{Self: baseURL(r) + "/webhookd/webhooks/" + url.PathEscape(wh.ID) + "/delivery-state"}
	s.encode(w, http.StatusOK, document{
		Data:  resource{Type: "webhook-delivery-state", ID: wh.ID, Attributes: attrs, Links: self},
		Links: self,
	})
	return nil
}

// rfc3339 renders t in RFC 3339 UTC, or null for the zero time.
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// figures reads a webhook's backlog and in-flight count from the
// dispatcher; a figure that cannot be read is null, logged once here.
func (s *server) figures(r *http.Request, wh subscriptions.Webhook) (backlog *int64, inFlight *int) {
	d := s.cfg.Deliveries
	if d == nil {
		return nil, nil
	}
	if n, err := d.Backlog(r.Context(), wh); err == nil {
		backlog = &n
	} else {
		s.log.Warn().Err(err).Str("webhook_id", wh.ID).Msg("delivery-state: backlog not read")
	}
	if n, err := d.InFlight(r.Context(), wh); err == nil {
		inFlight = &n
	} else {
		s.log.Warn().Err(err).Str("webhook_id", wh.ID).Msg("delivery-state: in_flight not read")
	}
	return backlog, inFlight
}
