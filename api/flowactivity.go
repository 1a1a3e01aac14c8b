package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/webhookd/webhookd/dispatcher/activity"
)

// A flow action's activity ("View All Activity", seeds 000 and 001): one
// row per triggering event, derived from the attempt log at read time.
// Every flow attempt records its event id, the profile's email, its try
// number, when the event was first tried and, when it failed, whether it
// will be tried again; so an event's newest attempt alone says where the
// event stands, and a row is that newest attempt. Reading newest first,
// the first attempt of an event met is its row; older attempts of the
// same event are folded into it (their count is the newest's try number).
//
// A page boundary can fall between an event's attempts: the row was on
// an earlier page, and its older attempts come up again below the
// cursor. They are recognised without memory of earlier pages: an
// attempt that failed and whose retry time has passed has been
// superseded by a newer attempt (retries never run early), so it is not
// a row. The one exception is the first page, which reads from the
// newest attempt down: there, such an attempt with nothing newer means
// its retry is due and not yet recorded, and the row says sending.
//
// No record exists before an event's first request has finished, so an
// event in its first request or waiting for a free slot has no row yet;
// "scheduled" is a status a filter may name, but no row has it.

// Activity statuses (Klaviyo's "View All Activity").
const (
	activityScheduled = "scheduled"
	activitySending   = "sending"
	activityWaiting   = "waiting_to_retry"
	activityDelivered = "delivered"
	activitySkipped   = "skipped"
)

var activityStatuses = []string{activityScheduled, activitySending, activityWaiting, activityDelivered, activitySkipped}

// Skip reasons besides the refusing request's error class.
const (
	skipRetriesExhausted = "retries_exhausted"
)

// activityAttributes are a flow-action-activity row's attributes.
type activityAttributes struct {
	EventID          string  `json:"event_id"`
	ProfileID        *string `json:"profile_id"`
	Email            *string `json:"email"`
	Status           string  `json:"status"`
	SkipReason       *string `json:"skip_reason"`
	Attempts         int     `json:"attempts"`
	LastStatus       *int    `json:"last_status"`
	Error            *string `json:"error"`
	FirstAttemptedAt *string `json:"first_attempted_at"`
	LastAttemptedAt  *string `json:"last_attempted_at"`
	NextAttemptAt    *string `json:"next_attempt_at"`
}

// activityRow is where an event stands by its newest attempt a; ok is
// false when a is not a row (a failed attempt whose retry is due, off
// the first page).
func activityRow(a *activity.Attempt, now time.Time, firstPage bool) (activityAttributes, bool) {
	row := activityAttributes{
		EventID: eventID(a), ProfileID: nonEmpty(a.ProfileID), Email: nonEmpty(a.Email),
		Attempts: a.Attempt, Error: nonEmpty(a.Error), LastAttemptedAt: rfc3339(a.StartedAt),
		FirstAttemptedAt: rfc3339(a.FirstAt),
	}
	unsent := a.ErrorClass == activity.ClassRender || a.ErrorClass == activity.ClassNotLive
	if unsent { // no request this time
		row.Attempts--
		row.LastAttemptedAt = nil
	}
	if row.FirstAttemptedAt == nil && a.Attempt == 1 && !unsent {
		row.FirstAttemptedAt = row.LastAttemptedAt // a record from before FirstAt existed
	}
	if a.Status != 0 {
		row.LastStatus = &a.Status
	}
	switch {
	case a.Outcome == activity.Delivered:
		row.Status = activityDelivered
	case a.NextAttemptAt.IsZero():
		row.Status = activitySkipped
		reason := string(a.ErrorClass)
		if a.Exhausted {
			reason = skipRetriesExhausted
		}
		row.SkipReason = &reason
	case a.NextAttemptAt.After(now):
		row.Status, row.NextAttemptAt = activityWaiting, rfc3339(a.NextAttemptAt)
	case firstPage:
		row.Status, row.NextAttemptAt = activitySending, rfc3339(a.NextAttemptAt)
	default:
		return row, false
	}
	return row, true
}

// eventID is the triggering event of a flow attempt (it carries one).
func eventID(a *activity.Attempt) string {
	if len(a.ExternalIDs) == 0 {
		return ""
	}
	return a.ExternalIDs[0]
}

// activityFilter is a compiled activity filter: every predicate must
// hold for a row.
type activityFilter []func(*activityAttributes) bool

func (f activityFilter) match(row *activityAttributes) bool {
	for _, p := range f {
		if !p(row) {
			return false
		}
	}
	return true
}

// parseActivityQuery reads page[size], page[cursor] and filter; the
// reader's query has no Match yet.
func parseActivityQuery(v url.Values) (activity.Query, activityFilter, error) {
	q, errs := parsePageParams(v)
	var f activityFilter
	if raw := v.Get(paramFilter); raw != "" {
		var err error
		if f, err = compileActivityFilter(raw, &q); err != nil {
			errs = append(errs, invalidParam(paramFilter, err.Error()))
		}
	}
	return q, f, errs.err()
}

// compileActivityFilter compiles equals/any on status, equals on email
// (case-insensitive) and equals on event_id (which narrows the scan).
func compileActivityFilter(raw string, q *activity.Query) (activityFilter, error) {
	exprs, err := parseFilter(raw)
	if err != nil {
		return nil, err
	}
	var f activityFilter
	for _, e := range conjuncts(exprs) {
		p, err := activityPredicate(e, q)
		if err != nil {
			return nil, err
		}
		f = append(f, p)
	}
	return f, nil
}

func activityPredicate(e filterExpr, q *activity.Query) (func(*activityAttributes) bool, error) {
	ops := map[string][]string{"status": {"equals", "any"}, "email": {"equals"}, "event_id": {"equals"}}[e.field]
	if ops == nil {
		return nil, filterErrorf("unknown field %q; supported: status, email, event_id", e.field)
	}
	if !slices.Contains(ops, e.op) {
		return nil, filterErrorf("operator %q does not apply to %s; supported: %v", e.op, e.field, ops)
	}
	if e.op != "any" && len(e.values) != 1 {
		return nil, filterErrorf("%s(%s,...) takes one value, not a list", e.op, e.field)
	}
	var vals []string
	for _, v := range e.values {
		s, err := v.str(e.field)
		if err != nil {
			return nil, err
		}
		vals = append(vals, s)
	}
	switch e.field {
	case "status":
		for _, s := range vals {
			if !slices.Contains(activityStatuses, s) {
				return nil, filterErrorf("status is one of %v, not %q", activityStatuses, s)
			}
		}
		return func(r *activityAttributes) bool { return slices.Contains(vals, r.Status) }, nil
	case "email":
		return func(r *activityAttributes) bool { return r.Email != nil && strings.EqualFold(*r.Email, vals[0]) }, nil
	default: // event_id
		q.ExternalID = vals[0]
		return func(r *activityAttributes) bool { return r.EventID == vals[0] }, nil
	}
}

// flowActionActivity serves GET /webhookd/flow-actions/{id}/activity: a
// page of the action's rows, newest attempt first, with the action's
// counters in meta.
func (s *server) flowActionActivity(w http.ResponseWriter, r *http.Request, account string) error {
	if s.cfg.Attempts == nil {
		return errNotFound
	}
	id := r.PathValue("id")
	if _, err := s.cfg.Flows.FlowOfAction(r.Context(), account, id); err != nil {
		return flowErr(err, errActionNotFound)
	}
	q, filter, err := parseActivityQuery(r.URL.Query())
	if err != nil {
		return err
	}
	var rows map[string]activityAttributes
	q.Match, rows = activityMatcher(time.Now(), q.Before == 0, filter)
	page, err := s.cfg.Attempts.List(r.Context(), account, id, q)
	if err != nil {
		return err
	}
	c, err := s.cfg.Flows.Counts(r.Context(), id)
	if err != nil {
		return err
	}
	base := baseURL(r)
	self := base + "/webhookd/flow-actions/" + url.PathEscape(id) + "/activity"
	data := make([]resource, len(page.Entries))
	for i, e := range page.Entries {
		row := rows[e.ID]
		data[i] = resource{Type: "flow-action-activity", ID: id + ":" + row.EventID, Attributes: row,
			Relationships: map[string]any{"last-attempt": map[string]any{
				"data":  identifier{Type: "webhook-attempt", ID: e.ID},
				"links": map[string]string{"related": attemptSelf(base, e.Attempt)},
			}},
			Links: selfLink{Self: self + "?" + paramFilter + "=" + url.QueryEscape(`equals(event_id,"`+escapeFilter(row.EventID)+`")`)},
		}
	}
	s.encode(w, http.StatusOK, document{Data: data, Links: cursorLinks(r, page.Next), Meta: map[string]any{
		// The action's counters (subscriptions/flows): every triggering
		// event since the action was made, whatever the filter and the
		// log's retention; waiting_to_retry includes events whose retry
		// is due (sending).
		"counts": map[string]int64{activityDelivered: c.Delivered, activitySkipped: c.Skipped, activityWaiting: c.Waiting},
	}})
	return nil
}

// activityMatcher returns the reader's Match for an activity page and
// the rows it accepted, by attempt id. The reader calls Match newest
// first, once per stored attempt, so the first attempt of an event met
// is its newest; seen is bounded by the reader's scan budget.
func activityMatcher(now time.Time, firstPage bool, filter activityFilter) (func(*activity.Attempt) bool, map[string]activityAttributes) {
	seen := map[string]bool{}
	rows := map[string]activityAttributes{}
	return func(a *activity.Attempt) bool {
		ev := eventID(a)
		if seen[ev] {
			return false
		}
		seen[ev] = true
		row, ok := activityRow(a, now, firstPage)
		if !ok || !filter.match(&row) {
			return false
		}
		rows[a.ID] = row
		return true
	}, rows
}

// escapeFilter quotes s for a double-quoted filter string.
func escapeFilter(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}
