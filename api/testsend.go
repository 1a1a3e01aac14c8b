package api

import (
	"errors"
	"net/http"

	"github.com/webhookd/webhookd/dispatcher"
)

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
	res := attemptResource(baseURL(r), a)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}
