package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// replayAttributes are a webhook-replay's attributes. Times are RFC 3339;
// finished_at and reason are null while it runs.
type replayAttributes struct {
	State       string   `json:"state"`
	Since       *string  `json:"since"`
	Until       *string  `json:"until"`
	Topics      []string `json:"topics"`
	EventsFound int64    `json:"events_found"`
	EventsSent  int64    `json:"events_sent"`
	Reason      *string  `json:"reason"`
	CreatedAt   *string  `json:"created_at"`
	FinishedAt  *string  `json:"finished_at"`
}

func replayURL(base, id, rid string) string {
	return base + "/webhookd/webhooks/" + url.PathEscape(id) + "/replays/" + url.PathEscape(rid)
}

func replayResource(base string, rp subscriptions.Replay) resource {
	return resource{
		Type: "webhook-replay",
		ID:   rp.ID,
		Attributes: replayAttributes{
			State: string(rp.State), Since: rfc3339(rp.Since), Until: rfc3339(rp.Until), Topics: rp.Topics,
			EventsFound: rp.EventsFound, EventsSent: rp.EventsSent, Reason: nonEmpty(rp.Reason),
			CreatedAt: rfc3339(rp.CreatedAt), FinishedAt: rfc3339(rp.FinishedAt),
		},
		Links: selfLink{Self: replayURL(base, rp.WebhookID, rp.ID)},
	}
}

// replayRequest is a parsed webhook-replay create document.
type replayRequest struct {
	since, until time.Time
	topics       []string // nil: the webhook's
}

// parseReplay decodes {"data":{"type":"webhook-replay","attributes":{
// "since":…,"until":…,"topics":[…]}}}: since is required, until
// defaults to now (a later until is cut to now: what is published after
// it arrives live), and each topic must be a non-empty string.
func parseReplay(body []byte, now time.Time) (replayRequest, error) {
	doc, err := parseTyped(body, "webhook-replay")
	if err != nil {
		return replayRequest{}, err
	}
	var errs errorList
	a := attributes{raw: doc.Data.Attributes, errs: &errs}
	a.required("since")
	rq := replayRequest{until: now}
	if t, ok := a.time("since"); ok {
		rq.since = t
	}
	if t, ok := a.time("until"); ok {
		rq.until = t
	}
	if rq.until.After(now) {
		rq.until = now
	}
	switch {
	case len(errs) > 0:
	case rq.since.After(now):
		errs = append(errs, invalid(a.pointer("since"), "since must not be in the future."))
	case !rq.until.After(rq.since):
		errs = append(errs, invalid(a.pointer("until"), "until must be later than since."))
	}
	if raw, ok := doc.Data.Attributes["topics"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &rq.topics); err != nil {
			errs = append(errs, invalid(a.pointer("topics"), "topics must be an array of topic ids."))
		} else if len(rq.topics) == 0 {
			errs = append(errs, invalid(a.pointer("topics"), "topics must not be empty; leave it out for the webhook's topics."))
		}
		for i, t := range rq.topics {
			if t == "" {
				errs = append(errs, invalid(a.pointer("topics")+"/"+strconv.Itoa(i), "A topic id must not be empty."))
			}
		}
	}
	return rq, errs.err()
}

// replayTopics checks each topic: the webhook's own, or one of the
// account's known topics.
func (s *server) replayTopics(ctx context.Context, wh subscriptions.Webhook, topics []string) error {
	var errs errorList
	for i, t := range topics {
		if slices.Contains(wh.Topics, t) {
			continue
		}
		ok, err := s.store.HasTopic(ctx, wh.AccountID, t)
		if err != nil {
			return err
		}
		if !ok {
			errs = append(errs, invalid("/data/attributes/topics/"+strconv.Itoa(i),
				"Unknown webhook topic "+strconv.Quote(t)+" for this account."))
		}
	}
	return errs.err()
}

// deliveriesFor returns the webhook of the path and the dispatcher, or
// 404 when either is missing.
func (s *server) deliveriesFor(r *http.Request, account string) (subscriptions.Webhook, Deliveries, error) {
	if s.cfg.Deliveries == nil {
		return subscriptions.Webhook{}, nil, errNotFound
	}
	wh, err := s.store.Get(r.Context(), account, r.PathValue("id"))
	return wh, s.cfg.Deliveries, err
}

// createReplay serves POST /webhookd/webhooks/{id}/replays: 202 and the
// running webhook-replay.
func (s *server) createReplay(w http.ResponseWriter, r *http.Request, account string) error {
	wh, d, err := s.deliveriesFor(r, account)
	if err != nil {
		return err
	}
	rq, err := decode(s, w, r, func(b []byte) (replayRequest, error) { return parseReplay(b, time.Now()) })
	if err != nil {
		return err
	}
	if rq.topics == nil {
		rq.topics = wh.Topics
	} else if err := s.replayTopics(r.Context(), wh, rq.topics); err != nil {
		return err
	}
	rp, err := d.StartReplay(r.Context(), wh, rq.since, rq.until, rq.topics)
	if err != nil {
		return err
	}
	res := replayResource(baseURL(r), rp)
	w.Header().Set("Location", res.Links.Self)
	s.encode(w, http.StatusAccepted, document{Data: res, Links: res.Links})
	return nil
}

// listReplays serves GET /webhookd/webhooks/{id}/replays, newest first
// (at most the last 50; finished ones are kept 7 days).
func (s *server) listReplays(w http.ResponseWriter, r *http.Request, account string) error {
	wh, d, err := s.deliveriesFor(r, account)
	if err != nil {
		return err
	}
	rps, err := d.Replays(r.Context(), wh)
	if err != nil {
		return err
	}
	base := baseURL(r)
	data := make([]resource, len(rps))
	for i, rp := range rps {
		data[i] = replayResource(base, rp)
	}
	self := base + "/webhookd/webhooks/" + url.PathEscape(wh.ID) + "/replays"
	s.encode(w, http.StatusOK, document{Data: data, Links: collectionLinks{Self: self}})
	return nil
}

// getReplay serves GET /webhookd/webhooks/{id}/replays/{replay_id}.
func (s *server) getReplay(w http.ResponseWriter, r *http.Request, account string) error {
	return s.oneReplay(w, r, account, Deliveries.Replay)
}

// cancelReplay serves DELETE /webhookd/webhooks/{id}/replays/{replay_id}:
// a running replay is cancelled (it stops before its next batch); the
// answer is 200 with the replay as it is now, finished ones unchanged.
func (s *server) cancelReplay(w http.ResponseWriter, r *http.Request, account string) error {
	return s.oneReplay(w, r, account, Deliveries.CancelReplay)
}

func (s *server) oneReplay(w http.ResponseWriter, r *http.Request, account string,
	op func(Deliveries, context.Context, subscriptions.Webhook, string) (subscriptions.Replay, error)) error {
	wh, d, err := s.deliveriesFor(r, account)
	if err != nil {
		return err
	}
	rp, err := op(d, r.Context(), wh, r.PathValue("replay_id"))
	if err != nil {
		return err
	}
	res := replayResource(baseURL(r), rp)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}
