package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/webhookd/webhookd/dispatcher/activity"
)

// AttemptLog is what the API needs from the attempt log;
// *activity.Reader implements it.
type AttemptLog interface {
	List(ctx context.Context, account, webhook string, q activity.Query) (activity.Page, error)
	Get(ctx context.Context, account, webhook, id string) (activity.Entry, error)
}

// Query parameters of the attempts list.
const (
	paramFilter   = "filter"
	paramCursor   = "page[cursor]"
	paramPageSize = "page[size]"
)

// Page sizes of the attempts list: Klaviyo's usual default and cap.
const (
	defaultAttemptsPage = 20
	maxAttemptsPage     = 100
)

var errAttemptNotFound = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No attempt with this id for this webhook."}

// attemptAttributes are a webhook-attempt's attributes. status is null
// when no response came back; error_class and error are null on success.
type attemptAttributes struct {
	AccountID       string   `json:"account_id"`
	WebhookID       string   `json:"webhook_id"`
	FlowID          *string  `json:"flow_id,omitempty"`
	ProfileID       *string  `json:"profile_id,omitempty"`
	Email           *string  `json:"email,omitempty"`
	StartedAt       *string  `json:"started_at"`
	DurationMS      float64  `json:"duration_ms"`
	Trigger         string   `json:"trigger"`
	Outcome         string   `json:"outcome"`
	Status          *int     `json:"status"`
	ErrorClass      *string  `json:"error_class"`
	Error           *string  `json:"error"`
	ResponseExcerpt *string  `json:"response_excerpt"`
	Events          int      `json:"events"`
	Bytes           int      `json:"bytes"`
	Attempt         int      `json:"attempt"`
	NextAttemptAt   *string  `json:"next_attempt_at"`
	ExternalIDs     []string `json:"external_ids"`
}

func attemptURL(base, webhook, id string) string {
	return base + "/webhookd/webhooks/" + url.PathEscape(webhook) + "/attempts/" + url.PathEscape(id)
}

// attemptSelf is an attempt's self link: under its flow action for a
// flow webhook's request, else under its webhook.
func attemptSelf(base string, a activity.Attempt) string {
	if a.FlowID != "" {
		return base + "/webhookd/flow-actions/" + url.PathEscape(a.WebhookID) + "/attempts/" + url.PathEscape(a.ID)
	}
	return attemptURL(base, a.WebhookID, a.ID)
}

func attemptResource(base string, a activity.Attempt) resource {
	attrs := attemptAttributes{
		AccountID:       a.AccountID,
		WebhookID:       a.WebhookID,
		FlowID:          nonEmpty(a.FlowID),
		ProfileID:       nonEmpty(a.ProfileID),
		Email:           nonEmpty(a.Email),
		StartedAt:       rfc3339(a.StartedAt),
		DurationMS:      float64(a.Duration.Microseconds()) / 1000,
		Trigger:         string(a.Trigger),
		Outcome:         string(a.Outcome),
		ErrorClass:      nonEmpty(string(a.ErrorClass)),
		Error:           nonEmpty(a.Error),
		ResponseExcerpt: nonEmpty(a.ResponseExcerpt),
		Events:          a.Events,
		Bytes:           a.Bytes,
		Attempt:         a.Attempt,
		NextAttemptAt:   rfc3339(a.NextAttemptAt),
		ExternalIDs:     a.ExternalIDs,
	}
	if a.Status != 0 {
		attrs.Status = &a.Status
	}
	if attrs.ExternalIDs == nil {
		attrs.ExternalIDs = []string{}
	}
	return resource{Type: "webhook-attempt", ID: a.ID, Attributes: attrs, Links: selfLink{Self: attemptSelf(base, a)}}
}

// webhookAttempts serves GET /webhookd/webhooks/{id}/attempts (one
// false: the webhook's attempts, newest first, a page at a time) and
// .../attempts/{attempt_id} (one true), as flowActionAttempts does for a
// flow action.
func (s *server) webhookAttempts(one bool) handler {
	return func(w http.ResponseWriter, r *http.Request, account string) error {
		if s.cfg.Attempts == nil {
			return errNotFound
		}
		wh, err := s.store.Get(r.Context(), account, r.PathValue("id"))
		if err != nil {
			return err
		}
		if one {
			return s.writeAttempt(w, r, account, wh.ID)
		}
		return s.writeAttempts(w, r, account, wh.ID)
	}
}

// writeAttempts answers with a page of the attempts of webhook (a system
// webhook or a flow action) of account, which the caller checked.
func (s *server) writeAttempts(w http.ResponseWriter, r *http.Request, account, webhook string) error {
	q, err := parseAttemptsQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.cfg.Attempts.List(r.Context(), account, webhook, q)
	if err != nil {
		return err
	}
	base := baseURL(r)
	data := make([]resource, len(page.Entries))
	for i, e := range page.Entries {
		data[i] = attemptResource(base, e.Attempt)
	}
	s.encode(w, http.StatusOK, document{Data: data, Links: cursorLinks(r, page.Next)})
	return nil
}

// cursorLinks are the links of a page read from the attempt log: self,
// and next with page[cursor] set to next unless it is zero.
func cursorLinks(r *http.Request, next uint64) collectionLinks {
	base := baseURL(r)
	self := base + r.URL.Path
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	links := collectionLinks{Self: self}
	if next != 0 {
		v := r.URL.Query()
		v.Set(paramCursor, strconv.FormatUint(next, 10))
		u := base + r.URL.Path + "?" + v.Encode()
		links.Next = &u
	}
	return links
}

// writeAttempt answers with one attempt of webhook of account.
func (s *server) writeAttempt(w http.ResponseWriter, r *http.Request, account, webhook string) error {
	e, err := s.cfg.Attempts.Get(r.Context(), account, webhook, r.PathValue("attempt_id"))
	if errors.Is(err, activity.ErrNotFound) {
		return errAttemptNotFound
	}
	if err != nil {
		return err
	}
	res := attemptResource(baseURL(r), e.Attempt)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}

// parseAttemptsQuery reads page[size], page[cursor] and filter.
func parseAttemptsQuery(v url.Values) (activity.Query, error) {
	q, errs := parsePageParams(v)
	if raw := v.Get(paramFilter); raw != "" {
		if err := compileFilter(raw, &q); err != nil {
			errs = append(errs, invalidParam(paramFilter, err.Error()))
		}
	}
	return q, errs.err()
}

// parsePageParams reads page[size] and page[cursor] (a stream sequence
// this API returned) into a query.
func parsePageParams(v url.Values) (activity.Query, errorList) {
	q := activity.Query{Limit: defaultAttemptsPage}
	var errs errorList
	if raw := v.Get(paramPageSize); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxAttemptsPage {
			errs = append(errs, invalidParam(paramPageSize, "page[size] must be an integer from 1 to 100."))
		} else {
			q.Limit = n
		}
	}
	if raw := v.Get(paramCursor); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || n == 0 {
			errs = append(errs, invalidParam(paramCursor, "page[cursor] is not a cursor this API returned; follow links.next."))
		} else {
			q.Before = n
		}
	}
	return q, errs
}

// compileFilter turns a filter into q's Match and its scan hints.
func compileFilter(raw string, q *activity.Query) error {
	exprs, err := parseFilter(raw)
	if err != nil {
		return err
	}
	var preds []func(*activity.Attempt) bool
	for _, e := range conjuncts(exprs) {
		p, err := predicate(e, q)
		if err != nil {
			return err
		}
		preds = append(preds, p)
	}
	q.Match = func(a *activity.Attempt) bool {
		for _, p := range preds {
			if !p(a) {
				return false
			}
		}
		return true
	}
	return nil
}

// attemptFilterFields are the fields a filter may name, with their
// operators (Klaviyo's names).
var attemptFilterFields = map[string][]string{
	"outcome":     {"equals", "any"},
	"trigger":     {"equals", "any"},
	"error_class": {"equals", "any"},
	"status":      {"equals", "any", "greater-than", "greater-or-equal", "less-than", "less-or-equal"},
	"started_at":  {"greater-than", "greater-or-equal", "less-than", "less-or-equal"},
	"external_id": {"equals"},
}

// enumValues are the values the string fields can hold.
var enumValues = map[string][]string{
	"outcome": {string(activity.Delivered), string(activity.Failed)},
	"trigger": {string(activity.TriggerLive), string(activity.TriggerRetry), string(activity.TriggerReplay), string(activity.TriggerTest)},
	"error_class": {string(activity.ClassConnect), string(activity.ClassRedirect), string(activity.ClassClient),
		string(activity.ClassServer), string(activity.ClassTLS), string(activity.ClassTimeout), string(activity.ClassBlocked),
		string(activity.ClassUnaccepted), string(activity.ClassInvalidURL), string(activity.ClassInterrupted),
		string(activity.ClassRender), string(activity.ClassNotLive)},
}

// predicate compiles one comparison, narrowing q's hints where it can.
func predicate(e filterExpr, q *activity.Query) (func(*activity.Attempt) bool, error) {
	ops, ok := attemptFilterFields[e.field]
	if !ok {
		return nil, filterErrorf("unknown field %q; supported: outcome, trigger, error_class, status, started_at, external_id", e.field)
	}
	if !slices.Contains(ops, e.op) {
		return nil, filterErrorf("operator %q does not apply to %s; supported: %v", e.op, e.field, ops)
	}
	if e.op != "any" && len(e.values) != 1 {
		return nil, filterErrorf("%s(%s,...) takes one value, not a list", e.op, e.field)
	}
	switch e.field {
	case "outcome", "trigger", "error_class":
		want := map[string]bool{}
		for _, v := range e.values {
			s, err := v.str(e.field)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(enumValues[e.field], s) {
				return nil, filterErrorf("%s is one of %v, not %q", e.field, enumValues[e.field], s)
			}
			want[s] = true
		}
		get := map[string]func(*activity.Attempt) string{
			"outcome":     func(a *activity.Attempt) string { return string(a.Outcome) },
			"trigger":     func(a *activity.Attempt) string { return string(a.Trigger) },
			"error_class": func(a *activity.Attempt) string { return string(a.ErrorClass) },
		}[e.field]
		return func(a *activity.Attempt) bool { return want[get(a)] }, nil
	case "status":
		var ns []int
		for _, v := range e.values {
			n, err := v.integer(e.field)
			if err != nil {
				return nil, err
			}
			ns = append(ns, n)
		}
		if e.op == "any" {
			return func(a *activity.Attempt) bool { return slices.Contains(ns, a.Status) }, nil
		}
		return compare(e.op, func(a *activity.Attempt) int { return a.Status }, ns[0]), nil
	case "started_at":
		t, err := e.values[0].datetime(e.field)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "greater-than", "greater-or-equal":
			if t.After(q.Since) {
				q.Since = t
			}
		default:
			until := t
			if e.op == "less-or-equal" {
				until = t.Add(time.Microsecond)
			}
			if q.Until.IsZero() || until.Before(q.Until) {
				q.Until = until
			}
		}
		us := t.UnixMicro()
		return compare(e.op, func(a *activity.Attempt) int64 { return a.StartedAt.UnixMicro() }, us), nil
	default: // external_id
		id, err := e.values[0].str(e.field)
		if err != nil {
			return nil, err
		}
		q.ExternalID = id
		return func(a *activity.Attempt) bool { return slices.Contains(a.ExternalIDs, id) }, nil
	}
}

// compare is the predicate field op v.
func compare[T int | int64](op string, field func(*activity.Attempt) T, v T) func(*activity.Attempt) bool {
	switch op {
	case "greater-than":
		return func(a *activity.Attempt) bool { return field(a) > v }
	case "greater-or-equal":
		return func(a *activity.Attempt) bool { return field(a) >= v }
	case "less-than":
		return func(a *activity.Attempt) bool { return field(a) < v }
	case "less-or-equal":
		return func(a *activity.Attempt) bool { return field(a) <= v }
	}
	return func(a *activity.Attempt) bool { return field(a) == v }
}
