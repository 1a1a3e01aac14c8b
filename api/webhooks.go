package api

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/webhookd/webhookd/subscriptions"
)

// webhookAttributes are a webhook's attributes in full. secret_key is
// write-only and has no field here, so no response can carry it.
type webhookAttributes struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
	EndpointURL string  `json:"endpoint_url"`
	Enabled     bool    `json:"enabled"`
	CreatedAt   *string `json:"created_at"`
	UpdatedAt   *string `json:"updated_at"`
}

// webhookResource renders wh with the attributes q asks for. Its topic
// relationship is always present, with linkage only.
func webhookResource(base string, wh subscriptions.Webhook, q query) resource {
	full := webhookAttributes{
		Name:        wh.Name,
		Description: wh.Description,
		EndpointURL: truncateEndpoint(wh.EndpointURL),
		Enabled:     wh.Enabled,
		CreatedAt:   formatTime(wh.CreatedAt),
		UpdatedAt:   formatTime(wh.UpdatedAt),
	}
	var attrs any = full
	if q.fields != nil {
		sparse := map[string]any{}
		for name, v := range map[string]any{
			"name": full.Name, "description": full.Description, "endpoint_url": full.EndpointURL,
			"enabled": full.Enabled, "created_at": full.CreatedAt, "updated_at": full.UpdatedAt,
		} {
			if q.fields[name] {
				sparse[name] = v
			}
		}
		attrs = sparse
	}
	topics := make([]identifier, len(wh.Topics))
	for i, t := range wh.Topics {
		topics[i] = identifier{Type: "webhook-topic", ID: t}
	}
	return resource{
		Type:          "webhook",
		ID:            wh.ID,
		Attributes:    attrs,
		Relationships: map[string]any{"webhook-topics": relationship{Data: topics}},
		Links:         selfLink{Self: webhookURL(base, wh.ID)},
	}
}

// topicResource renders a topic; topics have no attributes.
func topicResource(base, id string) resource {
	return resource{Type: "webhook-topic", ID: id, Links: selfLink{Self: topicURL(base, id)}}
}

// included lists the unique topics of whs, in first-seen order, or nil
// when q does not ask for them.
func included(base string, q query, whs ...subscriptions.Webhook) []resource {
	if !q.includeTopics {
		return nil
	}
	out := []resource{}
	seen := map[string]bool{}
	for _, wh := range whs {
		for _, t := range wh.Topics {
			if !seen[t] {
				seen[t] = true
				out = append(out, topicResource(base, t))
			}
		}
	}
	return out
}

// truncateEndpoint shows an endpoint as Klaviyo does, "truncated for
// security": scheme://host[:port], without userinfo, path or query, and
// without the scheme's default port.
func truncateEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Host
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return u.Scheme + "://" + host
}

// webhookDocument renders one webhook as a single-resource document.
func webhookDocument(r *http.Request, wh subscriptions.Webhook, q query) document {
	base := baseURL(r)
	res := webhookResource(base, wh, q)
	return document{Data: res, Included: included(base, q, wh), Links: res.Links}
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	whs, err := s.store.List(r.Context(), account)
	if err != nil {
		return err
	}
	base := baseURL(r)
	data := make([]resource, len(whs))
	for i, wh := range whs {
		data[i] = webhookResource(base, wh, q)
	}
	s.encode(w, http.StatusOK, document{
		Data:     data,
		Included: included(base, q, whs...),
		Links:    collectionLinks{Self: base + "/api/webhooks"},
	})
	return nil
}

func (s *server) getWebhook(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	wh, err := s.store.Get(r.Context(), account, r.PathValue("id"))
	if err != nil {
		return err
	}
	s.encode(w, http.StatusOK, webhookDocument(r, wh, q))
	return nil
}

func (s *server) createWebhook(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	nw, err := decode(s, w, r, func(b []byte) (subscriptions.NewWebhook, error) {
		return parseCreate(b, s.cfg.AllowInsecureEndpoints)
	})
	if err != nil {
		return err
	}
	if err := s.checkTopics(r.Context(), account, nw.Topics); err != nil {
		return err
	}
	nw.AccountID = account
	wh, err := s.store.Create(r.Context(), nw)
	if err != nil {
		return err
	}
	s.encode(w, http.StatusCreated, webhookDocument(r, wh, q))
	return nil
}

func (s *server) updateWebhook(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	p, err := decode(s, w, r, func(b []byte) (subscriptions.Patch, error) {
		return parsePatch(b, id, s.cfg.AllowInsecureEndpoints)
	})
	if err != nil {
		return err
	}
	if p.Topics != nil {
		if err := s.checkTopics(r.Context(), account, *p.Topics); err != nil {
			return err
		}
	}
	wh, err := s.store.Update(r.Context(), account, id, p)
	if err != nil {
		return err
	}
	s.encode(w, http.StatusOK, webhookDocument(r, wh, q))
	return nil
}

func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request, account string) error {
	if err := s.store.Delete(r.Context(), account, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkTopics reports every topic that is not in the account's catalog,
// each with its index in the request. The store checks again atomically
// (a *subscriptions.TopicError); this check only reports all at once.
func (s *server) checkTopics(ctx context.Context, account string, topics []string) error {
	catalog, err := s.store.Topics(ctx, account)
	if err != nil {
		return err
	}
	var errs errorList
	for i, t := range topics {
		if !slices.Contains(catalog, t) {
			errs = append(errs, unknownTopic(i, t))
		}
	}
	return errs.err()
}
