package api

import "net/http"

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
