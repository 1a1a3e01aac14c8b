package api

import (
	"net/http"
	"net/url"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// rotationType is the JSON:API type of a staged secret rotation.
const rotationType = "webhook-secret-rotation"

// The states of a rotation, derived from its schedule and the clock.
const (
	rotationPending   = "pending"   // both secrets sign; the previous one is primary
	rotationPromoted  = "promoted"  // both sign; the new one is primary
	rotationCompleted = "completed" // the previous secret retired; the new one signs alone
	rotationCancelled = "cancelled" // a PATCH of secret_key replaced both before retirement
)

// rotationAttributes are a rotation's attributes. The secret has no
// field: it is write-only.
type rotationAttributes struct {
	Status           string  `json:"status"`
	CreatedAt        *string `json:"created_at"`
	PromoteAt        *string `json:"promote_at"`
	RetirePreviousAt *string `json:"retire_previous_at"`
	CancelledAt      *string `json:"cancelled_at"`
}

// rotationStatus is where rec stands at now.
func rotationStatus(rec subscriptions.RotationRecord, now time.Time) string {
	switch {
	case !rec.CancelledAt.IsZero():
		return rotationCancelled
	case !now.Before(rec.RetireAt):
		return rotationCompleted
	case !now.Before(rec.PromoteAt):
		return rotationPromoted
	}
	return rotationPending
}

// rotationsURL is the collection link of webhook id's rotations.
func rotationsURL(base, id string) string {
	return base + "/webhookd/webhooks/" + url.PathEscape(id) + "/secret-rotations"
}

func rotationResource(base, webhookID string, rec subscriptions.RotationRecord, now time.Time) resource {
	return resource{
		Type: rotationType,
		ID:   rec.ID,
		Attributes: rotationAttributes{
			Status:           rotationStatus(rec, now),
			CreatedAt:        rfc3339(rec.CreatedAt),
			PromoteAt:        rfc3339(rec.PromoteAt),
			RetirePreviousAt: rfc3339(rec.RetireAt),
			CancelledAt:      rfc3339(rec.CancelledAt),
		},
		Relationships: map[string]any{"webhook": map[string]identifier{"data": {Type: "webhook", ID: webhookID}}},
		Links:         selfLink{Self: rotationsURL(base, webhookID) + "/" + url.PathEscape(rec.ID)},
	}
}

// createRotation serves POST /webhookd/webhooks/{id}/secret-rotations:
// stage a new secret that signs beside the current one until the current
// one retires. 201 with the rotation; 409 while another is in its window.
func (s *server) createRotation(w http.ResponseWriter, r *http.Request, account string) error {
	now := time.Now()
	nr, err := decode(s, w, r, func(b []byte) (subscriptions.NewRotation, error) { return parseRotation(b, now) })
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	wh, err := s.store.Rotate(r.Context(), account, id, nr)
	if err != nil {
		return err
	}
	rot := wh.Rotation
	res := rotationResource(baseURL(r), id, subscriptions.RotationRecord{
		ID: rot.ID, CreatedAt: rot.CreatedAt, PromoteAt: rot.PromoteAt, RetireAt: rot.RetireAt,
	}, time.Now()) // after the store's clock set the defaults
	s.encode(w, http.StatusCreated, document{Data: res, Links: res.Links})
	return nil
}

// listRotations serves GET /webhookd/webhooks/{id}/secret-rotations: the
// webhook's last rotations, newest first.
func (s *server) listRotations(w http.ResponseWriter, r *http.Request, account string) error {
	id := r.PathValue("id")
	recs, err := s.store.Rotations(r.Context(), account, id)
	if err != nil {
		return err
	}
	base, now := baseURL(r), time.Now()
	data := make([]resource, len(recs))
	for i, rec := range recs {
		data[i] = rotationResource(base, id, rec, now)
	}
	s.encode(w, http.StatusOK, document{Data: data, Links: collectionLinks{Self: rotationsURL(base, id)}})
	return nil
}

// getRotation serves GET /webhookd/webhooks/{id}/secret-rotations/{rid}.
func (s *server) getRotation(w http.ResponseWriter, r *http.Request, account string) error {
	id, rid := r.PathValue("id"), r.PathValue("rid")
	recs, err := s.store.Rotations(r.Context(), account, id)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.ID == rid {
			res := rotationResource(baseURL(r), id, rec, time.Now())
			s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
			return nil
		}
	}
	return errRotationNotFound
}

// parseRotation decodes and validates a rotation request, reporting
// every faulty field; now is the clock the times are checked against.
func parseRotation(body []byte, now time.Time) (subscriptions.NewRotation, error) {
	doc, err := parseTyped(body, rotationType)
	if err != nil {
		return subscriptions.NewRotation{}, err
	}
	var errs errorList
	a := attributes{raw: doc.Data.Attributes, errs: &errs}
	var nr subscriptions.NewRotation
	a.required("secret_key")
	secret, hasSecret := a.str("secret_key")
	if hasSecret {
		nr.Secret = a.nonEmpty("secret_key", secret)
	}
	// Omitted times are left zero: the store fills them in on Redis's
	// clock (promote now, retire DefaultOverlap later). A time that does
	// not parse is left zero too, its error already recorded.
	nr.PromoteAt, _ = a.time("promote_at")
	nr.RetireAt, _ = a.time("retire_previous_at")
	for _, p := range nr.Check(now) {
		if p.Field == "secret_key" && !hasSecret {
			continue // the required error says it
		}
		errs = append(errs, invalid(a.pointer(p.Field), p.Message))
	}
	return nr, errs.err()
}

// time returns the RFC 3339 member name, like str.
func (a attributes) time(name string) (time.Time, bool) {
	v, ok := a.str(name)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		*a.errs = append(*a.errs, invalid(a.pointer(name), name+" must be an RFC 3339 date-time, e.g. 2026-12-01T12:00:00Z."))
		return time.Time{}, false
	}
	return t, true
}

// rotationState is the delivery state's view of the secrets: which one
// is primary and when the other retires. Ids and times only, never a
// secret. nil (JSON null) when the webhook has no staged rotation.
type rotationState struct {
	RotationID       string  `json:"rotation_id"`
	Status           string  `json:"status"`
	Primary          string  `json:"primary"` // "previous" or "new"
	SigningSecrets   int     `json:"signing_secrets"`
	PromoteAt        *string `json:"promote_at"`
	RetirePreviousAt *string `json:"retire_previous_at"`
}

func rotationStateOf(wh subscriptions.Webhook, now time.Time) *rotationState {
	rot := wh.Rotation
	if rot == nil {
		return nil
	}
	st := rotationStatus(subscriptions.RotationRecord{PromoteAt: rot.PromoteAt, RetireAt: rot.RetireAt}, now)
	primary := "new"
	if st == rotationPending {
		primary = "previous"
	}
	return &rotationState{
		RotationID: rot.ID, Status: st, Primary: primary, SigningSecrets: len(wh.Secrets(now)),
		PromoteAt: rfc3339(rot.PromoteAt), RetirePreviousAt: rfc3339(rot.RetireAt),
	}
}
