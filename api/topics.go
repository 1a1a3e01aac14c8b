package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// listTopics serves the account's topic catalog: the built-in Klaviyo
// topics plus every topic seen on the stream for the account.
func (s *server) listTopics(w http.ResponseWriter, r *http.Request, account string) error {
	if _, err := parseQuery(r.URL.Query(), true); err != nil {
		return err
	}
	topics, err := s.store.Topics(r.Context(), account)
	if err != nil {
		return err
	}
	base := baseURL(r)
	data := make([]resource, len(topics))
	for i, t := range topics {
		data[i] = topicResource(base, t)
	}
	s.encode(w, http.StatusOK, document{
		Data:  data,
		Links: collectionLinks{Self: base + "/api/webhook-topics"},
	})
	return nil
}

// getTopic serves one topic of the catalog. The id arrives
// percent-encoded (event%3Aklaviyo.sent_sms); PathValue has decoded it.
func (s *server) getTopic(w http.ResponseWriter, r *http.Request, account string) error {
	if _, err := parseQuery(r.URL.Query(), true); err != nil {
		return err
	}
	id := r.PathValue("id")
	ok, err := s.store.HasTopic(r.Context(), account, id)
	if err != nil {
		return err
	}
	if !ok {
		return errTopicNotFound
	}
	res := topicResource(baseURL(r), id)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}

// declareTopic serves the extension POST /webhookd/webhook-topics: it
// adds a custom topic to the account's catalog before any event was
// published on it, so webhooks can subscribe at once. The body is a
// webhook-topic resource identifier, {"data":{"type":"webhook-topic",
// "id":"event:acme.signup"}}; the answer is the topic as GET
// /api/webhook-topics/{id} shows it, 201 when it is new, 200 when the
// catalog had it already (built in, seen on the stream or declared).
func (s *server) declareTopic(w http.ResponseWriter, r *http.Request, account string) error {
	topic, err := decode(s, w, r, parseTopicDeclaration)
	if err != nil {
		return err
	}
	had, err := s.store.HasTopic(r.Context(), account, topic)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !had {
		if s.cfg.CheckTopic != nil {
			if err := s.cfg.CheckTopic(topic); err != nil {
				return invalid("/data/id", fmt.Sprintf("Topic %q cannot be declared: %v.", topic, err))
			}
		}
		if err := s.store.AddTopics(r.Context(), account, topic); err != nil {
			return err
		}
		status = http.StatusCreated
	}
	res := topicResource(baseURL(r), topic)
	s.encode(w, status, document{Data: res, Links: res.Links})
	return nil
}

// parseTopicDeclaration reads the topic id of a declaration.
func parseTopicDeclaration(body []byte) (string, error) {
	doc, err := parseTyped(body, "webhook-topic")
	if err != nil {
		return "", err
	}
	if doc.Data.ID == nil || strings.TrimSpace(*doc.Data.ID) == "" {
		return "", invalid("/data/id", "data.id is required: the topic id, e.g. event:acme.signup.")
	}
	return *doc.Data.ID, nil
}

// unknownTopic is the error for a subscription to a topic outside the
// account's catalog, saying how to get it in.
func unknownTopic(i int, topic string) *apiError { return unknownTopicAt(topicPointer(i), topic, "") }

// unknownTopicAt is unknownTopic for the field at pointer, with more
// said after it.
func unknownTopicAt(pointer, topic, more string) *apiError {
	return invalid(pointer, fmt.Sprintf("Unknown webhook topic %q for this account. A custom topic joins the catalog "+
		"when its first event is published, or at once when declared: POST /webhookd/webhook-topics "+
		`{"data":{"type":"webhook-topic","id":%q}}. GET /api/webhook-topics lists the catalog.%s`, topic, topic, more))
}

// checkTrigger refuses a flow whose trigger names a topic outside the
// account's catalog: no event of it can come, so the flow would never
// fire. A trigger id with neither '.' nor ':' is a metric id (Klaviyo's
// shape, e.g. Rk7x2Q), matched against the metric events carry, which
// has no catalog to check.
func (s *server) checkTrigger(ctx context.Context, account, id string) error {
	if !strings.ContainsAny(id, ".:") {
		return nil
	}
	ok, err := s.store.HasTopic(ctx, account, id)
	if err != nil || ok {
		return err
	}
	return unknownTopicAt("/data/attributes/definition/triggers/0/id", id,
		" A trigger id without '.' or ':' is taken as a metric id instead.")
}
