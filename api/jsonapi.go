package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"
)

// mediaType is the Content-Type of every JSON:API response. Requests may
// use it, application/json (the Node SDK) or none at all.
const mediaType = "application/vnd.api+json"

// timeLayout is Klaviyo's date-time format: UTC with a +00:00 offset and
// microseconds, e.g. 2022-11-08T01:23:45.123456+00:00.
const timeLayout = "2006-01-02T15:04:05.000000-07:00"

// document is a JSON:API top-level document.
type document struct {
	Data any `json:"data"`
	// Included is nil unless the request asked for include=webhook-topics.
	Included []resource `json:"included,omitzero"`
	Links    any        `json:"links,omitempty"`
	Meta     any        `json:"meta,omitempty"`
}

// resource is one JSON:API resource object. Topics have no attributes.
type resource struct {
	Type          string         `json:"type"`
	ID            string         `json:"id"`
	Attributes    any            `json:"attributes,omitempty"`
	Relationships map[string]any `json:"relationships,omitempty"`
	Links         selfLink       `json:"links"`
}

// relationship is a to-many relationship with resource linkage only:
// Klaviyo's RelationshipLinks requires self and related, so no links.
type relationship struct {
	Data []identifier `json:"data"`
}

// identifier is a resource identifier object.
type identifier struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type selfLink struct {
	Self string `json:"self"`
}

// collectionLinks are a list's links; there is never a next or prev page.
type collectionLinks struct {
	Self string  `json:"self"`
	Next *string `json:"next"`
	Prev *string `json:"prev"`
}

// encodeFailedBody is the response when a document cannot be encoded.
const encodeFailedBody = `{"errors":[{"id":"00000000-0000-0000-0000-000000000000","status":500,"code":"error",` +
	`"title":"A server error occurred.","detail":"A server error occurred."}]}`

// encode writes v as a JSON:API response with status.
func (s *server) encode(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // links contain & and are read by programs
	if err := enc.Encode(v); err != nil {
		// Only a programming error gets here: the documents hold plain
		// strings, numbers and booleans.
		s.log.Error().Err(err).Msg("encode response")
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(encodeFailedBody)
	}
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decode reads the request body, at most Config.MaxBodyBytes (a larger
// body is a *http.MaxBytesError, 413), and parses it with parse.
func decode[T any](s *server, w http.ResponseWriter, r *http.Request, parse func([]byte) (T, error)) (T, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(body)
}

// baseURL is the scheme and host the client used, for links. It trusts
// no forwarding headers: behind a TLS-terminating proxy links say http.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// webhookURL is the self link of a webhook, with Klaviyo's trailing slash.
func webhookURL(base, id string) string {
	return base + "/api/webhooks/" + url.PathEscape(id) + "/"
}

// topicURL is the self link of a topic; ':' stays unescaped.
func topicURL(base, id string) string {
	return base + "/api/webhook-topics/" + url.PathEscape(id) + "/"
}

// formatTime renders t in timeLayout, or null for the zero time.
func formatTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeLayout)
	return &s
}
