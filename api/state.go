package api

import (
	"net/http"
	"net/url"
	"time"
)

// deliveryStateAttributes show why a webhook is in error, disabled or
// undeliverable. Timestamps are RFC 3339 or null; last_status,
// last_error, disabled_reason and undeliverable_reason are null when
// unset (last_status is null, too, when the last failure got no response
// at all: last_error then says why). undeliverable_reason is set while
// the dispatcher cannot deliver the webhook at all, enabled or not (e.g.
// its consumer cannot be created), so an enabled webhook that receives
// nothing always says why.
type deliveryStateAttributes struct {
	Enabled             bool    `json:"enabled"`
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
	}
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
