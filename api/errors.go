package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/subscriptions"
)

// Error codes, after Klaviyo's (which are Django REST framework's). The
// Python SDK requires id, code, title and detail to be strings.
const (
	codeInvalid          = "invalid"               // 400: a field or parameter breaks a rule
	codeParseError       = "parse_error"           // 400: the body is not JSON
	codeNotAuthenticated = "not_authenticated"     // 401: no key, or an unknown scheme
	codeAuthFailed       = "authentication_failed" // 401: unknown key
	codeNotFound         = "not_found"             // 404: no such path, webhook or topic
	codeMethod           = "method_not_allowed"    // 405
	codeConflict         = "conflict"              // 409: data.type or data.id does not match
	codeTooLarge         = "request_too_large"     // 413: body over Config.MaxBodyBytes
	codeUnprocessable    = "unprocessable"         // 422: valid, but cannot be done (a replay window the stream no longer keeps)
	codeServer           = "error"                 // 500: detail is always generic
	// codeThrottled (429) is in ratelimit.go.
)

// titles are the fixed titles of the codes.
var titles = map[string]string{
	codeInvalid:          "Invalid input.",
	codeParseError:       "Malformed request.",
	codeNotAuthenticated: "Authentication credentials were not provided.",
	codeAuthFailed:       "Incorrect authentication credentials.",
	codeNotFound:         "Not found.",
	codeMethod:           "Method not allowed.",
	codeConflict:         "Conflict.",
	codeTooLarge:         "Request body too large.",
	codeThrottled:        "Request was throttled.",
	codeUnprocessable:    "Unprocessable request.",
	codeServer:           "A server error occurred.",
}

// apiError is a client error whose JSON:API rendering is already known.
// Its detail is shown to the client, so it never holds a secret or an
// internal error text.
type apiError struct {
	status    int
	code      string
	detail    string
	pointer   string // JSON pointer into the request body at fault
	parameter string // or the query parameter at fault
}

func (e *apiError) Error() string { return e.code + ": " + e.detail }

// errorList is several client errors reported together, e.g. every
// faulty field of one request.
type errorList []*apiError

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// err returns l as an error, nil when empty.
func (l errorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func invalid(pointer, detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeInvalid, detail: detail, pointer: pointer}
}

func invalidParam(param, detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeInvalid, detail: detail, parameter: param}
}

func conflict(pointer, detail string) *apiError {
	return &apiError{status: http.StatusConflict, code: codeConflict, detail: detail, pointer: pointer}
}

func parseError(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeParseError, detail: detail, pointer: "/data"}
}

// The fixed API errors, each one JSON:API error object with Klaviyo's
// status, code and detail.
var (
	errNotFound         = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "Not found."}
	errNoCredentials    = &apiError{status: http.StatusUnauthorized, code: codeNotAuthenticated, detail: "Missing or invalid authorization scheme. Please use Klaviyo-API-Key or Bearer."}
	errBadCredentials   = &apiError{status: http.StatusUnauthorized, code: codeAuthFailed, detail: "Incorrect authentication credentials."}
	errInternal         = &apiError{status: http.StatusInternalServerError, code: codeServer, detail: "A server error occurred."}
	errWebhookNotFound  = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No webhook with this id."}
	errTopicNotFound    = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No webhook topic with this id in this account."}
	errReplayNotFound   = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No replay with this id for this webhook."}
	errRotationNotFound = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No secret rotation with this id for this webhook."}
	errRotationPending  = conflict("/data", "This webhook already has a secret rotation whose previous secret has not retired; "+
		"wait for its retire_previous_at, or PATCH secret_key to replace every secret at once.")
)

func methodNotAllowed(method string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, code: codeMethod, detail: fmt.Sprintf("Method %q not allowed.", method)}
}

// topicPointer is the pointer to the id of the i-th topic of a request.
func topicPointer(i int) string {
	return "/data/relationships/webhook-topics/data/" + strconv.Itoa(i) + "/id"
}

// toAPIErrors is the one place where errors become HTTP statuses and
// JSON:API error objects. internal reports an error the client must not
// see: the caller logs it and the client gets a generic 500.
func (s *server) toAPIErrors(err error) (status int, errs errorList, internal bool) {
	var (
		list    errorList
		one     *apiError
		tooBig  *http.MaxBytesError
		topicEr *subscriptions.TopicError
	)
	switch {
	case errors.As(err, &list):
		return list[0].status, list, false
	case errors.As(err, &one):
		return one.status, errorList{one}, false
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, errorList{{status: http.StatusRequestEntityTooLarge,
			code: codeTooLarge, detail: fmt.Sprintf("The request body exceeds %d bytes.", tooBig.Limit)}}, false
	case errors.As(err, &topicEr):
		return http.StatusBadRequest, errorList{unknownTopic(topicEr.Index, topicEr.Topic)}, false
	case errors.Is(err, subscriptions.ErrRotationPending):
		return http.StatusConflict, errorList{errRotationPending}, false
	case errors.Is(err, subscriptions.ErrNotFound):
		return http.StatusNotFound, errorList{errWebhookNotFound}, false
	case errors.Is(err, subscriptions.ErrLimit):
		return http.StatusBadRequest, errorList{invalid("/data", fmt.Sprintf(
			"This account already has the maximum of %d webhooks; delete one first.", s.cfg.MaxWebhooksPerAccount))}, false
	case errors.Is(err, subscriptions.ErrReplayNotFound):
		return http.StatusNotFound, errorList{errReplayNotFound}, false
	case errors.Is(err, dispatcher.ErrWebhookDisabled):
		return http.StatusConflict, errorList{conflict("/data", "The webhook is disabled; enable it before replaying its events.")}, false
	case errors.Is(err, dispatcher.ErrReplayWindow):
		return http.StatusUnprocessableEntity, errorList{{status: http.StatusUnprocessableEntity, code: codeUnprocessable,
			pointer: "/data/attributes/since", detail: "since is older than the oldest event the stream still keeps; " +
				"those events are gone. Choose a later since."}}, false
	case errors.Is(err, dispatcher.ErrNoSlot):
		return http.StatusTooManyRequests, errorList{{status: http.StatusTooManyRequests, code: codeThrottled,
			detail: "Every in-flight request slot of this webhook is in use (--max-in-flight); try again in a second."}}, false
	case errors.Is(err, dispatcher.ErrNotAvailable):
		return http.StatusNotFound, errorList{errNotFound}, false
	case errors.Is(err, subscriptions.ErrInvalid):
		return http.StatusBadRequest, errorList{invalid("/data", "The webhook breaks a validation rule.")}, false
	}
	return http.StatusInternalServerError, errorList{errInternal}, true
}

// endpointDetail explains why subscriptions.ValidateEndpoint refused an
// endpoint_url, without quoting it (it may carry a token).
func endpointDetail(err error) string {
	switch {
	case errors.Is(err, subscriptions.ErrEndpointScheme):
		return "endpoint_url must be an https URL."
	case errors.Is(err, subscriptions.ErrEndpointUserinfo):
		return "endpoint_url must not contain user info (user:password@)."
	case errors.Is(err, subscriptions.ErrEndpointHost):
		return "endpoint_url has a missing or invalid host."
	case errors.Is(err, subscriptions.ErrEndpointPrivate):
		return "endpoint_url must point to a public host, not localhost or a loopback, private or link-local address."
	case errors.Is(err, subscriptions.ErrEndpointTooLong):
		return fmt.Sprintf("endpoint_url is longer than %d bytes.", subscriptions.MaxEndpointLen)
	}
	return "endpoint_url must be a valid absolute https URL."
}

// errorObject is one JSON:API error object.
type errorObject struct {
	ID     string       `json:"id"`
	Status int          `json:"status"`
	Code   string       `json:"code"`
	Title  string       `json:"title"`
	Detail string       `json:"detail"`
	Source *errorSource `json:"source,omitempty"`
}

type errorSource struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

// errorDocument is a JSON:API error document.
type errorDocument struct {
	Errors []errorObject `json:"errors"`
}

// newErrorDocument renders errs, each with a fresh id.
func newErrorDocument(errs errorList) errorDocument {
	objs := make([]errorObject, len(errs))
	for i, e := range errs {
		objs[i] = errorObject{ID: uuid.NewString(), Status: e.status, Code: e.code, Title: titles[e.code], Detail: e.detail}
		if e.pointer != "" || e.parameter != "" {
			objs[i].Source = &errorSource{Pointer: e.pointer, Parameter: e.parameter}
		}
	}
	return errorDocument{Errors: objs}
}

// fail writes err as a JSON:API error response. An internal error is
// logged here, once, with the id the client sees, and never shown.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, errs, internal := s.toAPIErrors(err)
	doc := newErrorDocument(errs)
	if internal {
		s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).
			Str("error_id", doc.Errors[0].ID).Msg("internal error")
	}
	s.encode(w, status, doc)
}
